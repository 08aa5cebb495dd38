"""cuBLAS fp32 baseline for bench/matmul_table.ts: the same square products through PyTorch
on the same card, TF32 off, timed with CUDA events (median of 20 after warm-up).

    python3 bench/torch_matmul.py [--sizes 1024,4096,8192]
"""
import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--sizes", default="1024,4096,8192")
args = parser.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
print(f"device: {torch.cuda.get_device_name()} (torch {torch.__version__}, fp32, TF32 off)")
print("\n| size | ms | TFLOP/s |\n|---|---|---|")
for n in map(int, args.sizes.split(",")):
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    c = torch.empty(n, n, device="cuda")
    for _ in range(3):
        torch.mm(a, b, out=c)
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.mm(a, b, out=c)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    ms = sorted(times)[len(times) // 2]
    print(f"| {n}³ | {ms:.3f} | {2 * n**3 / (ms * 1e-3) / 1e12:.2f} |")
