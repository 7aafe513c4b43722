#!/usr/bin/env bash
# Installs the pinned TRL training stack (trl, transformers, torch, datasets, tokenizers,
# accelerate) into a separate cached venv, for tests/python/test_trl_training.py, which runs
# tests/python/trl_train_check.py with that venv's python.
#
#   tests/python/install-trl-venv.sh          # venv at ${TRAJ_TRL_VENV:-$HOME/.cache/traj/trl-venv}
#
# Idempotent: a stamp file in the venv holds the pinned spec; when it matches and the venv's
# python runs, nothing is installed (returns in well under a second). A changed pin (or base
# python) installs again into the same venv, so only what changed is downloaded.
#
# Why the full CUDA wheel: PyPI serves only the CUDA build of torch for Linux, and its shared
# libraries (libtorch_cpu.so included) are linked against libcudart, libcupti, libcublas,
# libcudnn, libnccl ... so `pip install torch --no-deps` does not even import
# ("libcudart.so.13: cannot open shared object file"). The CPU-only wheels live on another
# index, which this machine cannot reach. So the nvidia-* packages come along (3 GB of them).
# What can go is triton (1 GB): no torch library links it, and torch, transformers and trl use
# it only for CUDA/XPU kernels (TRL checks `is_triton_available()` and the device), so it is
# uninstalled after the install: 4.9 GB instead of 5.9 GB, same losses bit for bit. Set
# TRAJ_TRL_KEEP_TRITON=1 to keep it (e.g. on a machine with a GPU).
set -euo pipefail

venv="${TRAJ_TRL_VENV:-$HOME/.cache/traj/trl-venv}"
base_python="${TRAJ_TRL_BASE_PYTHON:-python3}"

# Versions known to work together on this machine (shared/notes/real-agent-libraries.md).
pins=(
  "torch==2.15.0"
  "transformers==5.24.0"
  "trl==1.16.0"
  "datasets==5.2.0"
  "tokenizers==0.23.3"
  "accelerate==1.16.0"
  "huggingface_hub==2.4.0"
  "jinja2==3.1.6"
)

stamp="$venv/.traj-trl-spec"
py_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
keep_triton="${TRAJ_TRL_KEEP_TRITON:-0}"
want="python=$py_version keep_triton=$keep_triton ${pins[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c '' 2>/dev/null; then
  echo "trl venv up to date: $venv"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
# One installer at a time (two test runs starting together must not interleave pip).
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
# Another run may have finished the install while we waited for the lock.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c '' 2>/dev/null; then
  echo "trl venv up to date: $venv"
  exit 0
fi

start=$(date +%s)
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "creating trl venv at $venv"
  rm -rf "$venv"
  "$base_python" -m venv "$venv"
fi
rm -f "$stamp"
echo "installing ${pins[*]} into $venv (first time: ~5 GB, a few minutes)"
# --no-cache-dir: the wheels are ~3 GB; a copy in pip's cache would only double the disk use.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "${pins[@]}"
if [ "$keep_triton" = "0" ]; then
  "$venv/bin/pip" uninstall --quiet --yes triton 2>/dev/null || true
fi

# Smoke test before stamping: the stack imports and torch computes a gradient on the CPU.
"$venv/bin/python" - <<'EOF'
import torch, transformers, trl, datasets, tokenizers, accelerate  # noqa: F401
x = torch.ones(2, 2, requires_grad=True)
(x * x).sum().backward()
assert x.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]]
print(f"torch {torch.__version__} transformers {transformers.__version__} trl {trl.__version__} "
      f"datasets {datasets.__version__} tokenizers {tokenizers.__version__} accelerate {accelerate.__version__}")
EOF

printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
size=$(du -sh "$venv" 2>/dev/null | cut -f1 || echo '?')
echo "trl venv ready in $(( $(date +%s) - start )) s: $venv ($size)"
