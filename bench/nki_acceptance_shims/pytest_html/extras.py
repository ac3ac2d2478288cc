def url(content, name="URL"):
    return {"name": name, "content": content}


def text(content, name="Text"):
    return {"name": name, "content": content}
