"""PyTorch eager baseline for bench/linear_attention_table.ts: the same chunked linear attention
with per-head decay (docs LASP.md §2), built from batched matmuls (cuBLAS fp32, TF32 off), the
backward by autograd. Validated first against a float64 token-by-token recurrence (outputs, final
state and all gradients) at a small size; then timed with CUDA events (median after warm-up) at
the same shapes, printing the same table columns. "fwd" runs under no_grad (the WGSL forward
saves nothing either); "fwd+bwd" is a grad-enabled forward plus backward.

The scan over chunk states runs in blocks of R chunks: an exclusive prefix inside each block by
one matmul with the R×R decay matrix, then a Python loop over blocks (N / (C·R) steps).

    python3 bench/torch_linear_attention.py [--shapes paper|small|B,H,N,d;...] [--chunk 64]
        [--block 32] [--iters 10] [--device cuda|cpu]
"""
import argparse
import math
import time

import torch

PEAK_TFLOPS = 66.9  # H100 SXM fp32 FMA
SHAPES = {
    "paper": [(4, 32, 4096, 128), (2, 16, 16384, 128), (1, 16, 65536, 128), (8, 16, 4096, 64)],
    "small": [(1, 4, 512, 64), (1, 2, 1024, 128)],
}


def exclusive_chunk_scan(L, log_a, block, s0):
    """S_prev[c] = Σ_{c'<c} a^(c−1−c') L[c'] + a^c S0 and the final a·S_prev[−1] + L[−1].

    L: [B, H, n, d, e] chunk contributions; log_a: [H] log of the per-chunk decay λ^C.
    """
    B, H, n, d, e = L.shape
    R = max(r for r in range(1, min(block, n) + 1) if n % r == 0)
    j = torch.arange(R, device=L.device, dtype=L.dtype)
    diff = j[:, None] - j[None, :] - 1  # i − 1 − j
    la = log_a.view(1, H, 1, 1)
    W = torch.where(diff >= 0, torch.exp(diff.clamp(min=0) * la), torch.zeros((), device=L.device))
    Lb = L.reshape(B, H, n // R, R, d * e)
    local = W[:, :, None] @ Lb  # [B, H, n/R, R, d·e]: prefix inside each block
    a = torch.exp(log_a).view(1, H, 1)
    powers = torch.exp(j * log_a.view(1, H, 1))[..., None]  # [1, H, R, 1]: a^i
    carry = s0.reshape(B, H, d * e) if s0 is not None else torch.zeros(B, H, d * e, device=L.device)
    out = []
    for b in range(n // R):
        out.append(local[:, :, b] + powers * carry[:, :, None, :])
        carry = a ** R * carry + a * local[:, :, b, -1] + Lb[:, :, b, -1]
    return torch.stack(out, 2).reshape(B, H, n, d, e), carry.reshape(B, H, d, e)


def chunked_linear_attention(q, k, v, decay, chunk, block=32, s0=None):
    """o [B, H, N, e] and the final state [B, H, d, e]; N must be a multiple of chunk."""
    B, H, N, d = q.shape
    e, C = v.shape[-1], chunk
    assert N % C == 0, f"N = {N} must be a multiple of the chunk {C}"
    n = N // C
    log_l = torch.log(decay).view(1, H, 1)
    i = torch.arange(C, device=q.device, dtype=q.dtype)
    diff = i[:, None] - i[None, :]
    M = torch.where(diff >= 0, torch.exp(diff.clamp(min=0) * log_l[..., None]), torch.zeros((), device=q.device))
    lam = torch.exp((i + 1) * log_l)[:, :, None, :, None]  # Λ: λ^(i+1)
    gam = torch.exp((C - 1 - i) * log_l)[:, :, None, :, None]  # Γ: λ^(C−1−i)
    qc, kc, vc = q.view(B, H, n, C, d), k.view(B, H, n, C, d), v.view(B, H, n, C, e)
    o = ((qc @ kc.transpose(-1, -2)) * M[:, :, None]) @ vc  # intra-chunk
    L = (kc * gam).transpose(-1, -2) @ vc  # [B, H, n, d, e]
    S_prev, final = exclusive_chunk_scan(L, C * torch.log(decay), block, s0)
    o = o + (qc * lam) @ S_prev  # inter-chunk
    return o.reshape(B, H, N, e), final


def recurrence(q, k, v, decay, s0):
    """Float64 definition: S_t = λ S_(t−1) + k_tᵀ v_t, o_t = q_t S_t."""
    B, H, N, d = q.shape
    S = s0.clone()
    lam = decay.view(1, H, 1, 1)
    outs = []
    for t in range(N):
        S = lam * S + k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append((q[:, :, t, :, None] * S).sum(-2))
    return torch.stack(outs, 2), S


def validate(device, chunk, block):
    torch.manual_seed(0)
    B, H, N, d = 1, 2, 4 * chunk, 32
    dt = torch.float64
    x = {n: torch.randn(B, H, N, d, dtype=dt) for n in ["q", "k", "v", "do"]}
    s0, ds = torch.randn(B, H, d, d, dtype=dt), torch.randn(B, H, d, d, dtype=dt)
    decay = torch.tensor([1.0, 0.9], dtype=dt)
    ins = [x["q"], x["k"], x["v"], s0]
    ref_in = [t.clone().requires_grad_() for t in ins]
    ro, rs = recurrence(*ref_in[:3], decay, ref_in[3])
    ((ro * x["do"]).sum() + (rs * ds).sum()).backward()
    got_in = [t.float().to(device).requires_grad_() for t in ins]
    go, gs = chunked_linear_attention(*got_in[:3], decay.float().to(device), chunk, block, got_in[3])
    ((go * x["do"].float().to(device)).sum() + (gs * ds.float().to(device)).sum()).backward()
    worst = 0.0
    pairs = [(go, ro), (gs, rs)] + [(g.grad, r.grad) for g, r in zip(got_in, ref_in)]
    for name, (a, b) in zip(["o", "finalState", "dq", "dk", "dv", "dInitialState"], pairs):
        a, b = a.detach().double().cpu(), b.detach()
        rel = (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item()
        if not rel <= 1e-5:
            raise SystemExit(f"validation failed: {name} rel RMS {rel:.2e}")
        worst = max(worst, rel)
    return worst


def timed(fn, iters, device):
    for _ in range(2):
        fn()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    wall = (time.perf_counter() - t0) * 1e3 / iters
    if device != "cuda":
        return wall, wall, "wall-clock"
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2], wall, "cuda-events"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="paper")
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = args.device
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"device: {name} (torch {torch.__version__}, fp32, TF32 off)")
    # a single block and several blocks of the chunk scan
    worst = max(validate(dev, args.chunk, args.block), validate(dev, args.chunk, 2))
    print(f"validated against the float64 recurrence: worst rel RMS {worst:.1e}")
    shapes = SHAPES.get(args.shapes) or [tuple(map(int, s.split(","))) for s in args.shapes.split(";")]
    rows = []
    for B, H, N, d in shapes:
        g = torch.Generator(device=dev).manual_seed(1)
        q, k, v, do = (torch.rand(B, H, N, d, device=dev, generator=g) - 0.5 for _ in range(4))
        decay = torch.tensor([math.exp(-(2 ** -(5 + 8 * h / H))) for h in range(H)], device=dev)
        C = args.chunk

        def forward():
            with torch.no_grad():
                chunked_linear_attention(q, k, v, decay, C, args.block)

        def both():
            xs = [t.detach().requires_grad_() for t in (q, k, v)]
            o, _ = chunked_linear_attention(*xs, decay, C, args.block)
            o.backward(do)

        f_ms, _, method = timed(forward, args.iters, dev)
        fb_ms, fb_wall, _ = timed(both, args.iters, dev)
        T = B * H * N
        tf = lambda flop, ms: flop / (ms * 1e-3) / 1e12
        f_tf, fb_tf = tf(4 * T * d * (d + C), f_ms), tf(14 * T * d * (d + C), fb_ms)
        rows.append([f"{B},{H},{N},{d}", f"torch eager C{C} R{args.block}", f"{f_ms:.3f}", f"{fb_ms:.3f}",
                     f"{B * N / (fb_ms * 1e-3) / 1e6:.3g}", f"{f_tf:.3g}", f"{fb_tf:.3g}",
                     f"{100 * fb_tf / PEAK_TFLOPS:.3g}", f"{fb_wall:.3f}", f"{worst:.1e}", method])
        del q, k, v, do
        if dev == "cuda":
            torch.cuda.empty_cache()
    print("\n| B,H,N,d | variant | fwd ms | fwd+bwd ms | Mtok/s (f+b) | fwd TFLOP/s | f+b TFLOP/s "
          "| % fp32 peak (f+b) | wall f+b ms | val. rel RMS | timing |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {' | '.join(r)} |")


if __name__ == "__main__":
    main()
