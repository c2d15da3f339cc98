"""Llama 3.1 70B FP8 performance profiles for Dynamo's mocker and simulator (README.md here).

A package (``perf_profile``) for the benchmarks and the tests, installed with
``pip install -e benchmarks`` (benchmarks/pyproject.toml maps it to this folder):
``from perf_profile import llama_perf_profile, measure, measured``. Each module also still runs
as a file, which is how the dynamo role calls it:
``python files/perf_profile/llama_perf_profile.py --gpu G --tp N [--out F]``.
"""
