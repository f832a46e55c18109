"""Our side of Keras' import: the default backend before it, our classes after it.

Keras reads `KERAS_BACKEND` once, at import. We prefer JAX (the official
implementation's framework, and our fastest path) when the user has not chosen.

Keras finds the classes of a saved `.keras` file by their registered names, which
exist only once the modules defining them are imported. `videoprism_keras` loads
Keras lazily (the tokenizer and video tools run without it), so a user who does
`import videoprism_keras; keras.models.load_model("head.keras")` would have no
registered classes. So we register them as soon as Keras is imported, whoever
imports it: at once if it already is, else right after its import finishes.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings

# Importing these registers every class we ever save (the model modules come with them).
REGISTERED_MODULES = ("videoprism_keras.classifier", "videoprism_keras.finetune")


_chosen: str | None = None  # what `choose_default_backend` set, if it set anything


def choose_default_backend() -> None:
    global _chosen
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    if importlib.util.find_spec("jax") is not None:
        os.environ["KERAS_BACKEND"] = _chosen = "jax"


def float32_compiler_options(
    opt_in: str | None = None, machine: str | None = None, system: str | None = None
) -> dict | None:
    """`jax.jit`'s `compiler_options` for a float32 forward pass (`XLA_CPU_FLOAT32_OPTIONS`:
    oneDNN's GEMM for each dot) when opted in (`VIDEOPRISM_XLA_ONEDNN=1`, see
    `XLA_ONEDNN_OPT_IN` for why not by default) on the platform measured (x86-64 Linux),
    else None (jaxlib's defaults). When on, JAX's warning that it cannot keep these programs
    in the persistent compilation cache is filtered from then on (that one only). The
    arguments default to this process's."""
    import platform

    from .constants import XLA_CPU_FLOAT32_OPTIONS, XLA_ONEDNN_CACHE_WARNING, XLA_ONEDNN_OPT_IN

    opt_in = os.environ.get(XLA_ONEDNN_OPT_IN) if opt_in is None else opt_in
    machine = platform.machine() if machine is None else machine
    system = platform.system() if system is None else system
    if opt_in != "1" or system != "Linux" or machine.lower() not in ("x86_64", "amd64"):
        return None
    warnings.filterwarnings("ignore", message=XLA_ONEDNN_CACHE_WARNING)
    return dict(XLA_CPU_FLOAT32_OPTIONS)


def default_chosen() -> bool:
    """Whether KERAS_BACKEND holds our default (set above), not the user's choice."""
    return _chosen is not None and os.environ.get("KERAS_BACKEND") == _chosen


_pending = False


def register_with_keras() -> None:
    """Registers our classes now if Keras is loaded, else once it is (see the docstring)."""
    global _pending
    if "keras" not in sys.modules:
        if not any(isinstance(f, _AfterKeras) for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterKeras())
        return
    if _importing_ours():  # Keras came in through our own modules: finish those first
        _pending = True
        return
    _pending = False
    for name in REGISTERED_MODULES:
        importlib.import_module(name)


def register_if_pending() -> None:
    """Called after each lazy import of ours: completes a registration deferred above."""
    if _pending:
        register_with_keras()


def _importing_ours() -> bool:
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("videoprism_keras.")
    )


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of `keras` to register our classes after it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            try:
                register_with_keras()
            except Exception as err:  # never break the user's `import keras` over it
                warnings.warn(
                    f"videoprism_keras could not register its classes: {err}", stacklevel=2
                )

        spec.loader.exec_module = exec_module
        return spec
