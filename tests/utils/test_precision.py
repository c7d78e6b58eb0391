"""--precision fp32|bf16|fp16 of frozen forwards, and bf16 autocast in training steps.

Tolerances (random-init tiny and base encoders, 2 s synthetic audio, CPU bf16 autocast):
- every layer's mean per-patch cosine to fp32 >= 0.999 and the worst patch's >= 0.99
  (measured: >= 0.9999 mean at every layer of base, 0.9999 worst at its last);
- tokenizer codes under bf16 equal the fp32 codes on >= 95% of the valid patches
  (measured: 100% on held-out audio);
- a frozen probe's test accuracy under bf16 is within 2 of 30 test clips of fp32's.
"""

import contextlib
import json

import numpy as np
import pytest
import torch

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.utils import precision as P

needs_bf16 = pytest.mark.skipif("bf16" not in P.supported_precisions("cpu"), reason="CPU has no native bf16")

LAYER_COS_MEAN = 0.999
LAYER_COS_MIN = 0.99
CODES_AGREE = 0.95


def _chirps(batch: int, seconds: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    t = torch.arange(n) / 16000.0
    f0 = 100 + 1900 * torch.rand(batch, 1, generator=g)
    wavs = 0.3 * torch.sin(2 * torch.pi * f0 * (t + 0.3 * t**2)) + 0.05 * torch.randn(batch, n, generator=g)
    lengths = torch.full((batch,), n)
    lengths[-1] = int(0.75 * n)
    return wavs, lengths


# ------------------------------------------------------------------ the option itself
def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        P.check_precision("fp8", "cpu")


def test_cpu_without_native_low_precision_says_why(monkeypatch):
    monkeypatch.setattr(P, "_cpu_supports", lambda p: p == "fp32")
    with pytest.raises(ValueError, match=r"no native bf16 matmul .*emulate.*use one of fp32$"):
        P.check_precision("bf16", "cpu")
    with pytest.raises(ValueError, match="no native fp16"):
        P.autocast_context("fp16", "cpu")
    assert P.check_precision("fp32", "cpu") == "fp32"


def test_gpu_without_bf16_says_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-16GB")
    assert P.supported_precisions("cuda") == ("fp32", "fp16")
    with pytest.raises(ValueError, match="Tesla V100-SXM2-16GB does not support bf16.*use one of fp32, fp16"):
        P.check_precision("bf16", "cuda:0")


@needs_bf16
def test_fp32_context_turns_an_enclosing_autocast_off():
    x = torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
        with P.autocast_context("fp32", "cpu"):
            assert (x @ x).dtype == torch.float32
        with P.maybe_autocast(None, "cpu"):  # None: leave the step's autocast alone
            assert (x @ x).dtype == torch.bfloat16
    with P.autocast_context("bf16", "cpu"):
        assert (x @ x).dtype == torch.bfloat16


# ------------------------------------------------------------------ numerics
@needs_bf16
@pytest.mark.timeout(120)
@pytest.mark.parametrize("arch", ["tiny", "base"])
def test_bf16_layers_stay_close_to_fp32(arch):
    torch.manual_seed(0)
    encoder = BeatsEncoder(arch).eval()
    wavs, lengths = _chirps(2, 2.0, seed=1)
    with torch.no_grad():
        ref = encoder.encode(wavs, lengths)
        with P.autocast_context("bf16", "cpu"):
            low = encoder.encode(wavs, lengths)
    assert low.layers[-1].dtype == torch.bfloat16  # the transformer did run in bf16
    valid = ~ref.padding_mask
    for i, (a, b) in enumerate(zip(ref.layers, low.layers)):
        cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)[valid]
        assert float(cos.mean()) >= LAYER_COS_MEAN, f"layer {i}: mean cosine {float(cos.mean()):.5f}"
        assert float(cos.min()) >= LAYER_COS_MIN, f"layer {i}: worst patch cosine {float(cos.min()):.5f}"


@needs_bf16
def test_fbank_stays_fp32_under_autocast():
    encoder = BeatsEncoder("tiny")
    wavs, lengths = _chirps(2, 1.0, seed=2)
    ref = encoder.frontend(wavs, lengths).fbank
    with P.autocast_context("bf16", "cpu"):
        low = encoder.frontend(wavs, lengths).fbank
    assert low.dtype == torch.float32 and torch.equal(ref, low)


@needs_bf16
def test_bf16_codes_agree_with_fp32():
    from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer

    torch.manual_seed(0)
    tokenizer = BeatsTokenizer("tiny").train()
    with torch.no_grad():
        tokenizer(*_chirps(4, 2.0, seed=3))  # k-means init of the codebook
    tokenizer.eval()
    wavs, lengths = _chirps(4, 2.0, seed=4)  # held-out audio
    ref = tokenizer.encode(wavs, lengths)
    with P.autocast_context("bf16", "cpu"):
        low = tokenizer.encode(wavs, lengths)
    valid = ref >= 0
    assert torch.equal(valid, low >= 0)
    share = float((ref[valid] == low[valid]).float().mean())
    assert share >= CODES_AGREE, f"only {share:.1%} of the codes agree"


# ------------------------------------------------------------------ frozen-forward callers
@needs_bf16
def test_trss_embeddings_are_fp32_and_cached_per_precision(tmp_path):
    from espnet2_sonar.sampling.embed import embed_batch, extract_embeddings

    torch.manual_seed(0)
    encoder = BeatsEncoder("tiny").eval()
    wavs = [np.asarray(w[:n]) for w, n in zip(*_chirps(3, 1.0, seed=5))]
    ref = embed_batch(encoder, wavs, precision="fp32")
    low = embed_batch(encoder, wavs, precision="bf16")
    assert low.dtype == np.float32
    cos = (ref * low).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(low, axis=1)
    assert cos.min() >= LAYER_COS_MEAN and not np.array_equal(ref, low)

    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"u{i} x{i}\n" for i in range(3)))
    table = {f"x{i}": w for i, w in enumerate(wavs)}
    kwargs = dict(reader=table.__getitem__, min_seconds=0.0, progress=False)
    got = extract_embeddings(encoder, scp, tmp_path / "cache", precision="bf16", **kwargs)
    assert json.loads((tmp_path / "cache" / "meta.json").read_text())["precision"] == "bf16"
    np.testing.assert_allclose(got.embeddings, low, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="different settings \\(precision\\)"):
        extract_embeddings(encoder, scp, tmp_path / "cache", precision="fp32", **kwargs)


@needs_bf16
@pytest.mark.timeout(300)
def test_probe_accuracy_unchanged_under_bf16(tmp_path):
    from sonar_fixtures import write_labelled_tones as _write_dir

    from espnet2_sonar.beats.interop import save_official
    from espnet2_sonar.eval.probe import ProbeConfig, run_probe

    torch.manual_seed(0)
    ckpt = save_official(BeatsEncoder("tiny").eval(), tmp_path / "tiny.pt")
    train, test = _write_dir(tmp_path, "train", 10, seed=1), _write_dir(tmp_path, "test", 10, seed=2)
    config = ProbeConfig(max_epochs=100, patience=15)
    runs = {p: run_probe(str(ckpt), str(train), str(test), seed=0, config=config, cache_dir=str(tmp_path / "cache"),
                         precision=p) for p in ("fp32", "bf16")}
    assert runs["bf16"]["precision"]["precision"] == "bf16" and runs["fp32"]["precision"]["precision"] == "fp32"
    paths = {p: r["embedding_cache"]["test"]["path"] for p, r in runs.items()}
    assert paths["fp32"] != paths["bf16"]  # a bf16 probe never reads fp32 embeddings, nor the reverse
    assert runs["fp32"]["n_test"] == 30
    assert abs(runs["bf16"]["accuracy"] - runs["fp32"]["accuracy"]) <= 2 / 30


@needs_bf16
def test_drift_of_an_encoder_from_itself_is_zero_at_each_precision():
    from espnet2_sonar.eval.drift import drift, layer_features

    torch.manual_seed(0)
    encoder = BeatsEncoder("tiny").eval()
    wavs, _ = _chirps(2, 1.0, seed=6)
    clips = {"a": wavs[0], "b": wavs[1]}
    low = layer_features(encoder, clips, "bf16")
    assert all(h.dtype == torch.float32 for f in low for h in f)
    assert max(drift(low, layer_features(encoder, clips, "bf16"))) < 1e-6
    assert 0 < max(drift(low, layer_features(encoder, clips, "fp32"))) < 1e-3  # the numerics do differ


# ------------------------------------------------------------------ training steps under autocast
def _tiny_sonar(tmp_path, **model_conf):
    from bench_step_cost import build, make_checkpoints, synthetic_batch

    wavs, lengths = synthetic_batch(4, 1.0, seed=0)
    enc, tok = make_checkpoints(tmp_path, wavs, lengths, seed=0)
    model, optimizer = build("train_sonar", enc, tok, seed=0, model_conf=model_conf)
    return model, optimizer, wavs, lengths


@pytest.fixture
def bench_on_path(monkeypatch):
    """bench/step_cost.py's tiny SONAR builder, importable as ``bench_step_cost``."""
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    monkeypatch.setitem(sys.modules, "bench_step_cost", importlib.import_module("step_cost"))


@needs_bf16
@pytest.mark.timeout(120)
def test_sonar_step_under_bf16_autocast_keeps_codebook_and_grads_fp32(tmp_path, bench_on_path):
    model, optimizer, wavs, lengths = _tiny_sonar(tmp_path)
    before = {k: v.dtype for k, v in model.state_dict().items()}
    with P.autocast_context("bf16", "cpu"):
        loss, stats, _ = model(wavs, lengths)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert {k: v.dtype for k, v in model.state_dict().items()} == before  # buffers and weights keep their dtype
    codebook = model.targets.codebook
    for name in ("usage", "replay_usage", "cluster_size"):
        assert getattr(codebook, name).dtype == torch.float32, name
    assert codebook.weight.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)


def _frozen_dtypes(model, wavs, lengths, amp: bool) -> dict:
    """dtype of the first transformer layer's output in the tokenizer and in M0 during one step."""
    seen = {}

    def record(name):
        def hook(module, inputs, out):
            seen.setdefault(name, (out[0] if isinstance(out, tuple) else out).dtype)  # returns None: output kept
        return hook

    parts = {"tokenizer": model.targets.tokenizer.encoder, "teacher": model.teacher.module}
    hooks = [enc.encoder.layers[0].register_forward_hook(record(name)) for name, enc in parts.items()]
    try:
        with torch.no_grad(), (P.autocast_context("bf16", "cpu") if amp else contextlib.nullcontext()):
            model(wavs, lengths)
    finally:
        for h in hooks:
            h.remove()
    return seen


@needs_bf16
@pytest.mark.timeout(120)
@pytest.mark.parametrize("frozen, amp, expected", [
    (None, True, torch.bfloat16),     # follows the AMP step
    ("fp32", True, torch.float32),    # forced fp32 inside an AMP step
    ("bf16", False, torch.bfloat16),  # bf16 frozen forwards in an fp32 step
    (None, False, torch.float32),
])
def test_frozen_precision_sets_the_tokenizer_and_teacher_numerics(tmp_path, bench_on_path, frozen, amp, expected):
    model, _, wavs, lengths = _tiny_sonar(tmp_path, **({} if frozen is None else {"frozen_precision": frozen}))
    assert model.teacher is not None
    assert _frozen_dtypes(model, wavs, lengths, amp) == {"tokenizer": expected, "teacher": expected}


def test_frozen_precision_is_checked_in_the_config():
    from espnet2_sonar.sonar.config import SonarConfig

    assert SonarConfig(frozen_precision="bf16").frozen_precision == "bf16"
    with pytest.raises(ValueError, match="frozen_precision must be one of"):
        SonarConfig(frozen_precision="half")


def test_amp_trainer_autocasts_cpu_runs_only_with_use_amp(monkeypatch, caplog):
    from types import SimpleNamespace

    from espnet2_sonar.utils.amp_trainer import cpu_amp_context

    x = torch.randn(3, 3)
    with cpu_amp_context(SimpleNamespace(use_amp=False, ngpu=0)):
        assert (x @ x).dtype == torch.float32
    if "bf16" in P.supported_precisions("cpu"):
        with cpu_amp_context(SimpleNamespace(use_amp=True, ngpu=0)):
            assert (x @ x).dtype == torch.bfloat16
    # GPU runs: ESPnet's own autocast, nothing added
    assert isinstance(cpu_amp_context(SimpleNamespace(use_amp=True, ngpu=1)), contextlib.nullcontext)
    # a CPU without native bf16: fp32, and the log says why
    monkeypatch.setattr(P, "_cpu_supports", lambda p: p == "fp32")
    with cpu_amp_context(SimpleNamespace(use_amp=True, ngpu=0)):
        assert (x @ x).dtype == torch.float32
    assert "training in fp32" in caplog.text and "no native bf16" in caplog.text
