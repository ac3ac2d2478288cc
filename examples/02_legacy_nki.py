"""A kernel in the legacy `neuronxcc.nki` style, run unchanged: index expressions, `psum += nl.matmul(...)`,
`nki.simulate_kernel` and `nki.benchmark`.

Run: python examples/02_legacy_nki.py
"""

import ml_dtypes
import numpy as np

import trnsim.nki

trnsim.nki.install_aliases()  # `import neuronxcc.nki` now resolves to trnsim

import neuronxcc.nki as nki  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402


@nki.jit
def matmul_tiled(lhsT, rhs):
    """result[M, N] = lhsT.T @ rhs, the legacy tiled-matmul tutorial: K tiles accumulate in one PSUM tile."""
    K, M = lhsT.shape
    _, N = rhs.shape
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    TILE_M = nl.tile_size.gemm_stationary_fmax  # 128
    TILE_K = nl.tile_size.pmax  # 128
    TILE_N = nl.tile_size.gemm_moving_fmax  # 512
    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            res_psum = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TILE_K):
                i_k = k * TILE_K + nl.arange(TILE_K)[:, None]
                lhsT_tile = nl.load(lhsT[i_k, m * TILE_M + nl.arange(TILE_M)[None, :]])
                rhs_tile = nl.load(rhs[i_k, n * TILE_N + nl.arange(TILE_N)[None, :]])
                res_psum += nl.matmul(lhsT_tile, rhs_tile, transpose_x=True)
            res_sb = nl.copy(res_psum, dtype=result.dtype)
            nl.store(result[m * TILE_M : (m + 1) * TILE_M, n * TILE_N : (n + 1) * TILE_N], value=res_sb)
    return result


def main() -> None:
    rng = np.random.default_rng()
    bf16 = ml_dtypes.bfloat16
    lhsT = rng.uniform(-1, 1, (512, 256)).astype(bf16)
    rhs = rng.uniform(-1, 1, (512, 1024)).astype(bf16)

    out = nki.simulate_kernel(matmul_tiled, lhsT, rhs)
    ref = lhsT.astype(np.float32).T @ rhs.astype(np.float32)
    rel = np.max(np.abs(out.astype(np.float32) - ref)) / np.max(np.abs(ref))
    print(f"simulate_kernel: output {out.shape} {out.dtype}, max error relative to max |ref|: {rel:.1e}")

    # nki.benchmark on real hardware runs neuron-bench; here it reports the simulated latency.
    bench = nki.benchmark(warmup=5, iters=10)(matmul_tiled)
    bench(lhsT, rhs)
    p50 = bench.benchmark_result.nc_latency.get_latency_percentile(50)
    flops = 2 * 256 * 512 * 1024
    print(f"benchmark p50 latency: {p50:.2f} us ({flops / (p50 * 1e6):.1f} TFLOPS)")


if __name__ == "__main__":
    main()
