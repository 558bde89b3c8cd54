import tracestop


def test_all_is_sorted_and_complete():
    public = {n for n in dir(tracestop) if not n.startswith("_") and n not in {"annotations"}}
    public -= {m for m in public if type(getattr(tracestop, m)).__name__ == "module"}
    assert tracestop.__all__ == sorted(tracestop.__all__, key=str.lower)
    assert set(tracestop.__all__) == public


def test_importing_tracestop_stays_light():
    import subprocess
    import sys

    code = "import sys, tracestop; print(' '.join(m for m in ('torch', 'transformers', 'fastapi', 'sympy', 'math_verify', 'matplotlib', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
