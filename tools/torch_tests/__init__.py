"""The torch suite: tests that run upstream DAWN code or the exporter's torch side.

They need torch (``pip install -e ".[export]"``) and a DAWN-pytorch checkout named by ``DAWN_SRC``;
a missing precondition fails the test with the reason (tools/test.sh runs this suite only where
torch is installed and says so when it is not):

    DAWN_SRC=DAWN-pytorch python -m unittest discover -s tools/torch_tests -t .
"""
