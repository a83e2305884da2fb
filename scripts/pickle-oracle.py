#!/usr/bin/env python3
"""What CPython's unpicklers would do with a file, without running anything.

A differential oracle for `mlsign scan`: each input is unpickled by the C unpickler
(`pickle.load`, which `numpy.load` and `torch.load` use) and by the pure-Python one
(`pickle._Unpickler`, which `joblib.load` subclasses). Both are subclassed so that

* `find_class(module, name)` records the global the loader asked for and returns an inert stub
  class; the names are the ones the loader would import, after its Python-2 mapping (learned by
  letting the base `find_class` run with `__import__` replaced by a function that raises, so
  nothing is ever imported);
* `persistent_load(pid)` records the id and returns a stub;
* every stub is a class whose metaclass makes calling, instantiating (REDUCE, INST, OBJ, NEWOBJ),
  `__setstate__`, item assignment and `append`/`extend`/`add` harmless no-ops that return new
  stubs, so the replay goes as far as the loader's parser would.

Usage: pickle-oracle.py FILE... -> one JSON object per line:
  {"path", "c": RESULT, "py": RESULT}
  RESULT = {"globals": [[module, name, raw_module, raw_name]], "pids": N,
            "complete": bool, "error": str|null}
The library entry point is `oracle(data) -> {"c": RESULT, "py": RESULT}`.
"""
import _compat_pickle
import builtins
import io
import json
import pickle
import resource
import sys


class _Captured(Exception):
    pass


def _capture_import(name, *args, **kwargs):
    raise _Captured(name)


class _StubMeta(type):
    def __call__(cls, *args, **kwargs):
        return _new_stub()

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _new_stub()

    def __setstate__(cls, state):
        pass

    def __setitem__(cls, key, value):
        pass


def _stub_new(cls, *args, **kwargs):
    return _new_stub()


def _stub_init(self, *args, **kwargs):
    pass


def _new_stub():
    return _StubMeta("Stub", (), {"__new__": _stub_new, "__init__": _stub_init})


def _mapped(unpickler_find_class, self, module, name):
    """(module, name) as the base find_class would import them."""
    real = builtins.__import__
    builtins.__import__ = _capture_import
    mapped_module = module
    try:
        unpickler_find_class(self, module, name)
    except _Captured as e:
        mapped_module = e.args[0]
    except Exception:
        pass
    finally:
        builtins.__import__ = real
    mapped_name = name
    target = _compat_pickle.NAME_MAPPING.get((module, name))
    if target is not None and (mapped_module != module or target[0] == module):
        # A same-module rename (itertools.izip_longest) is ambiguous: take the renamed one.
        if target[0] == mapped_module:
            mapped_name = target[1]
    return mapped_module, mapped_name


def _make(base):
    class Oracle(base):
        def __init__(self, f):
            super().__init__(f, encoding="latin1")
            self.seen = []
            self.pids = 0

        def find_class(self, module, name):
            m, n = _mapped(base.find_class, self, module, name)
            self.seen.append([m, n, module, name])
            return _new_stub()

        def persistent_load(self, pid):
            self.pids += 1
            return _new_stub()

    return Oracle


COracle = _make(pickle.Unpickler)
PyOracle = _make(pickle._Unpickler)


def _run(cls, data):
    u = cls(io.BytesIO(data))
    out = {"globals": u.seen, "pids": 0, "complete": False, "error": None}
    try:
        u.load()
        out["complete"] = True
    except RecursionError:
        out["error"] = "RecursionError"
    except MemoryError:
        out["error"] = "MemoryError"
    except BaseException as e:  # noqa: BLE001 - any loader error ends the replay
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        out["error"] = "%s: %s" % (type(e).__name__, str(e)[:200])
    out["pids"] = u.pids
    return out


def limit_memory(gib=4):
    """The C unpickler sizes its memo from LONG_BINPUT keys: cap the address space so a
    huge key fails with MemoryError instead of exhausting the machine. Also silences the
    unraisable-exception noise of half-built objects freed later."""
    sys.unraisablehook = _quiet_unraisable
    lim = gib << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        lim = min(lim, hard)
    resource.setrlimit(resource.RLIMIT_AS, (lim, hard))


def _quiet_unraisable(_):
    # The C unpickler can leave "Exception ignored" noise (a bytearray with exported buffers
    # freed after an error); it says nothing about what was loaded.
    pass


def oracle(data):
    return {"c": _run(COracle, data), "py": _run(PyOracle, data)}


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    limit_memory()
    for path in argv:
        with open(path, "rb") as f:
            data = f.read()
        r = oracle(data)
        r["path"] = path
        print(json.dumps(r, ensure_ascii=True, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
