"""The Python reference implementations shared by training (scripts/train) and the benchmarks
(scripts/bench): the face crop (`align`, the same recipe as src/align.rs, checked by
tests/align_parity.rs) and the BlazeFace detector through onnxruntime (`blazeface`).

Installed editable into the scripts' virtual environments (`pip install -e scripts/reference`).
"""
