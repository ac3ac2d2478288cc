"""Stand-in for aws-embedded-metrics' MetricsContext: keeps metrics in memory (no CloudWatch)."""


class MetricsContext:
    def __init__(self):
        self.namespace = ""
        self.metrics = {}
        self.dimensions = []
        self.properties = {}

    @staticmethod
    def empty():
        return MetricsContext()

    def put_metric(self, name, value, unit=None):
        self.metrics[name] = (value, unit)

    def set_dimensions(self, dimensions):
        self.dimensions = list(dimensions)

    def set_property(self, key, value):
        self.properties[key] = value
