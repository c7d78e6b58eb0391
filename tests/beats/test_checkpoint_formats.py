"""Every BEATs checkpoint format in and out (beats/formats.py, tokenizer/formats.py), fbank statistics in cfg, and
Hugging Face specs (utils/hub.py) read offline from a pre-filled cache."""

import subprocess

import pytest
import torch
import yaml

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.beats.formats import (
    detect_format,
    install_encoder,
    load_beats_encoder,
    save_espnet,
)
from espnet2_sonar.beats.frontend import ESPNET_FBANK_MEAN, ESPNET_FBANK_STD, FBANK_MEAN, FBANK_STD
from espnet2_sonar.beats.interop import CheckpointMismatchError, load_official, save_official
from espnet2_sonar.tokenizer.formats import load_beats_tokenizer
from espnet2_sonar.tokenizer.interop import load_official_tokenizer, save_official_tokenizer
from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer
from espnet2_sonar.utils.hub import HubFileUnavailable, parse_hub_spec, resolve_checkpoint_path
from sonar_fixtures import (
    PYTHON,
    REPO,
    fill_hub_cache,
    make_sonar_stage,
    sonar_train_args,
    subprocess_env,
    write_wav_dir,
)

ESPNET_DEFAULT_CFG = dict(BeatsConfig().to_dict())  # ESPnet's BeatsConfig defaults are the official ones


def _encoder(seed=0, **kw):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BeatsEncoder(BeatsConfig.named("tiny"), **kw).eval()


def _wavs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(2, 12000, generator=g), torch.tensor([12000, 12000])


def _espnet_encoder(**kw):
    from espnet2.beats.encoder import BeatsEncoder as EspnetBeatsEncoder

    return EspnetBeatsEncoder(input_size=1, **kw).eval()


def _partial_cfg():
    """What an ESPnet recipe's ``beats_config`` holds: only the non-default keys, plus ESPnet's own."""
    tiny = BeatsConfig.named("tiny").to_dict()
    cfg = {k: v for k, v in tiny.items() if v != ESPNET_DEFAULT_CFG[k] and not k.startswith("fbank")}
    return dict(cfg, mask_ratio=0.75, decoder_layers=2, codebook_vocab_size=1024)


# ---------------------------------------------------------------- ESPnet format out and in
@pytest.mark.timeout(60)
def test_espnet_encoder_built_from_our_export_gives_our_outputs(tmp_path):
    ours = _encoder(seed=1, fbank_mean=14.0, fbank_std=5.0)  # not ESPnet's nor the official stats
    path = save_espnet(ours, tmp_path / "esp.pt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["cfg"]["fbank_mean"] == 14.0 and ckpt["cfg"]["fbank_std"] == 5.0
    conf = yaml.safe_load(path.with_suffix(".yaml").read_text())["encoder_conf"]
    assert conf == {"beats_ckpt_path": str(path.resolve()), "fbank_mean": 14.0, "fbank_std": 5.0}
    espnet = _espnet_encoder(**conf)
    loaded = espnet.load_state_dict(ckpt["model"], strict=False)
    assert loaded.missing_keys == [] and loaded.unexpected_keys == []  # exactly ESPnet's keys
    wavs, lengths = _wavs(2)
    with torch.no_grad():
        want = ours(wavs, lengths)[0]
        torch.testing.assert_close(espnet(wavs, lengths)[0], want, atol=1e-5, rtol=0)
        # without the recorded statistics ESPnet silently applies its own: different outputs
        silent = _espnet_encoder(beats_ckpt_path=str(path))
        assert (silent(wavs, lengths)[0] - want).abs().max() > 1e-3
    assert detect_format(ckpt) == "espnet"
    back = load_beats_encoder(path)  # our ESPnet export reads back with its own statistics
    assert (back.config.fbank_mean, back.config.fbank_std) == (14.0, 5.0)


@pytest.mark.timeout(60)
def test_espnet_checkpoints_load_with_espnet_statistics_and_same_outputs(tmp_path):
    cfg = _partial_cfg()
    with torch.random.fork_rng():
        torch.manual_seed(3)
        espnet = _espnet_encoder(beats_config=cfg)  # ESPnet's default fbank statistics
    torch.save({"cfg": cfg, "model": espnet.state_dict()}, tmp_path / "openbeats.pt")
    # generate_beats_checkpoint --finetuned_checkpoint: the whole ESPnet model and its token list
    whole = {f"encoder.{k}": v for k, v in espnet.state_dict().items()}
    whole.update({"decoder.linear_out.weight": torch.zeros(3, 160), "decoder.linear_out.bias": torch.zeros(3)})
    torch.save({"cfg": cfg, "model": whole, "token_list": ["a", "b", "c"]}, tmp_path / "ft_espnet.pt")
    wavs, lengths = _wavs(4)
    with torch.no_grad():
        want = espnet(wavs, lengths)[0]
    for name in ("openbeats.pt", "ft_espnet.pt"):
        ours = load_beats_encoder(tmp_path / name)
        assert (ours.config.fbank_mean, ours.config.fbank_std) == (ESPNET_FBANK_MEAN, ESPNET_FBANK_STD)
        assert ours.config.encoder_embed_dim == 160 and ours.num_layers == 2
        with torch.no_grad():
            torch.testing.assert_close(ours(wavs, lengths)[0], want, atol=1e-5, rtol=0)
    # still strict: an ESPnet extra that is not BEATs (a learned layer-weighting) is named
    torch.save({"cfg": cfg, "model": dict(espnet.state_dict(), layer_weights=torch.ones(3, 1))}, tmp_path / "x.pt")
    with pytest.raises(CheckpointMismatchError, match=r"x\.pt.*unexpected keys \['layer_weights'\]"):
        load_beats_encoder(tmp_path / "x.pt")
    with pytest.raises(CheckpointMismatchError, match="tokenizer checkpoint, not an encoder"):
        tok = BeatsTokenizer("tiny")
        load_beats_encoder(save_official_tokenizer(tok, tmp_path / "tok.pt"))


@pytest.mark.timeout(60)
def test_fbank_statistics_round_trip_encoder_and_tokenizer(tmp_path):
    enc = _encoder(fbank_mean=ESPNET_FBANK_MEAN, fbank_std=ESPNET_FBANK_STD)
    path = save_official(enc, tmp_path / "enc.pt")
    back = load_official(path)
    assert (back.frontend.fbank_mean, back.frontend.fbank_std) == (ESPNET_FBANK_MEAN, ESPNET_FBANK_STD)
    wavs, lengths = _wavs(5)
    with torch.no_grad():
        assert torch.equal(back(wavs, lengths)[0], enc(wavs, lengths)[0])
    # a released official file has no statistics in cfg: the official ones
    ckpt = torch.load(path, weights_only=True)
    legacy = {k: v for k, v in ckpt["cfg"].items() if not k.startswith("fbank")}
    torch.save({"cfg": legacy, "model": ckpt["model"]}, tmp_path / "legacy.pt")
    assert load_beats_encoder(tmp_path / "legacy.pt").config.fbank_mean == FBANK_MEAN
    assert load_official(tmp_path / "legacy.pt").frontend.fbank_std == FBANK_STD
    with pytest.raises(ValueError, match="fbank_std must be > 0"):
        BeatsConfig(fbank_std=0.0)

    tok = BeatsTokenizer("tiny", fbank_mean=14.0, fbank_std=5.0).train()
    with torch.no_grad():
        tok(*_wavs(6))  # the first training batch k-means-initialises the codebook
    tok.eval()
    tpath = save_official_tokenizer(tok, tmp_path / "tok.pt")
    assert torch.load(tpath, weights_only=True)["cfg"]["fbank_mean"] == 14.0
    tback = load_official_tokenizer(tpath)
    assert (tback.encoder.frontend.fbank_mean, tback.config.encoder.fbank_std) == (14.0, 5.0)
    with torch.no_grad():
        assert torch.equal(tback.encode(wavs, lengths), tok.encode(wavs, lengths))
    # an ESPnet tokenizer file: padding convs, partial cfg, embed_loss_beta -> ESPnet statistics
    tckpt = torch.load(tpath, weights_only=True)
    model = dict(tckpt["model"], **{"patch_embedding_pad.weight": torch.ones(1, 1, 16, 16),
                                    "raw2fbank_pad.weight": torch.ones(1, 1, 400)})
    cfg = {k: v for k, v in tckpt["cfg"].items() if not k.startswith("fbank") and k not in ("codebook_beta",)}
    torch.save({"cfg": dict(cfg, embed_loss_beta=0.5, mask_ratio=0.75), "model": model}, tmp_path / "esp_tok.pt")
    etok = load_beats_tokenizer(tmp_path / "esp_tok.pt")
    assert (etok.config.encoder.fbank_mean, etok.config.codebook_beta) == (ESPNET_FBANK_MEAN, 0.5)
    assert etok.num_codes == tok.num_codes


# ---------------------------------------------------------------- fine-tuned files, installation
@pytest.mark.timeout(60)
def test_install_turns_fine_tuned_and_espnet_files_into_the_canonical_format(tmp_path):
    enc = _encoder(seed=6)
    ft = save_official(enc, tmp_path / "ft.pt", predictor=torch.nn.Linear(160, 5), label_dict={0: "dog"})
    assert detect_format(torch.load(ft, weights_only=True)) == "official_finetuned"
    with pytest.raises(CheckpointMismatchError, match="predictor"):
        load_official(ft)  # the strict official loader alone refuses it
    out = install_encoder(ft, tmp_path / "base" / "encoder.pt")
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {"cfg", "model"} and ckpt["cfg"]["finetuned_model"] is False
    assert not any(k.startswith("predictor.") for k in ckpt["model"]) and ckpt["cfg"]["fbank_mean"] == FBANK_MEAN
    loaded = load_official(out)  # strict, no ignore list
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), enc.state_dict().values()))
    mtime = out.stat().st_mtime_ns
    install_encoder(ft, out)  # same content: left untouched (recipe stage guards compare mtimes)
    assert out.stat().st_mtime_ns == mtime

    esp = save_espnet(enc, tmp_path / "esp.pt")
    ckpt = torch.load(esp, weights_only=True)
    torch.save({"cfg": {k: v for k, v in ckpt["cfg"].items() if not k.startswith("fbank")}, "model": ckpt["model"]},
               tmp_path / "esp_nostats.pt")
    out2 = install_encoder(tmp_path / "esp_nostats.pt", tmp_path / "base2.pt")
    assert torch.load(out2, weights_only=True)["cfg"]["fbank_std"] == ESPNET_FBANK_STD

    cli = [PYTHON, "-m", "espnet2_sonar.bin.install_checkpoint"]
    tok = save_official_tokenizer(BeatsTokenizer("tiny"), tmp_path / "tok.pt")
    proc = subprocess.run(cli + ["--src", str(tok), "--out", str(tmp_path / "x.pt")], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "tok.pt: this is a BEATs tokenizer checkpoint" in proc.stderr


@pytest.mark.timeout(60)
def test_fine_tuned_official_file_samples_replay(tmp_path):
    from espnet2_sonar.bin.sonar_sample import main

    ft = save_official(_encoder(seed=7), tmp_path / "ft.pt", predictor=torch.nn.Linear(160, 4), label_dict={})
    write_wav_dir(tmp_path / "prior", "old", 8, seed=0, seconds=(0.3, 0.5))
    write_wav_dir(tmp_path / "new", "new", 4, seed=1, seconds=(0.3, 0.5))
    out = tmp_path / "replay"
    main(["--prior_dir", str(tmp_path / "prior"), "--new_dir", str(tmp_path / "new"), "--ckpt", str(ft),
          "--out_dir", str(out), "--num_strata", "2", "--rho", "1.0", "--no_progress"])
    assert len((out / "wav.scp").read_text().splitlines()) == 4


@pytest.mark.timeout(150)
def test_fine_tuned_official_file_from_the_hub_trains(tmp_path):
    """SonarTask with ``--encoder_conf init=hf://...`` (a fine-tuned official file, read offline
    from a pre-filled cache) and an ESPnet-format T0."""
    stage = make_sonar_stage(tmp_path)
    enc = load_official(stage.encoder)
    save_official(enc, tmp_path / "ft.pt", predictor=torch.nn.Linear(160, 527), label_dict={0: "Speech"})
    tckpt = torch.load(stage.tokenizer, weights_only=True)
    model = dict(tckpt["model"], **{"patch_embedding_pad.weight": torch.ones(1, 1, 16, 16),
                                    "raw2fbank_pad.weight": torch.ones(1, 1, 400)})
    torch.save({"cfg": dict(tckpt["cfg"], mask_ratio=0.75), "model": model}, tmp_path / "esp_tok.pt")
    cache = tmp_path / "hf_cache"
    fill_hub_cache(cache, "someone/beats-ft", {"ckpt/ft.pt": tmp_path / "ft.pt"})
    stage.encoder, stage.tokenizer = "hf://someone/beats-ft/ckpt/ft.pt", tmp_path / "esp_tok.pt"
    out = tmp_path / "exp"
    cmd = [PYTHON, "-m", "espnet2_sonar.bin.sonar_train", *sonar_train_args(stage, out, max_epoch=1)]
    env = subprocess_env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    state = torch.load(out / "1epoch.pth", map_location="cpu", weights_only=True)
    # M0 (the frozen teacher) is the fine-tuned file's encoder
    teacher = {k[len("teacher.module."):]: v for k, v in state.items() if k.startswith("teacher.module.")}
    assert teacher and all(torch.equal(teacher[k], v) for k, v in enc.state_dict().items())


@pytest.mark.timeout(90)
def test_recipe_stage2_installs_fine_tuned_and_espnet_files_as_the_base(tmp_path):
    """sonar.sh stage 2 with --base_ckpt / --base_tokenizer in other formats: the base every later
    stage reads is the canonical official file; a rerun leaves it alone."""
    from sonar_fixtures import make_official_checkpoints

    prior = write_wav_dir(tmp_path / "data" / "pools" / "prior", "old", 4, seed=1)
    ckpts = make_official_checkpoints(tmp_path / "m0", prior)
    enc = load_official(ckpts["encoder"])
    ft = save_official(enc, tmp_path / "ft.pt", predictor=torch.nn.Linear(160, 3), label_dict={0: "a"})
    esp = torch.load(save_espnet(enc, tmp_path / "esp.pt"), weights_only=True)
    esp["cfg"] = {k: v for k, v in esp["cfg"].items() if not k.startswith("fbank")}  # as ESPnet writes it
    torch.save(esp, tmp_path / "esp.pt")

    def stage2(base_ckpt):
        cmd = ["./run.sh", "--data_dir", str(tmp_path / "data"), "--exp_dir", str(tmp_path / "exp"), "--stage", "2",
               "--stop_stage", "2", "--base_ckpt", str(base_ckpt), "--base_tokenizer", str(ckpts["tokenizer"])]
        env = subprocess_env(PATH=f"{PYTHON.rsplit('/', 1)[0]}:{subprocess_env()['PATH']}")
        proc = subprocess.run(cmd, cwd=REPO / "egs2" / "debian_sounds" / "sonar1", env=env, capture_output=True,
                              text=True, timeout=80)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    base = tmp_path / "exp" / "base"
    stage2(ft)
    assert not any(k.startswith("predictor.") for k in torch.load(base / "encoder.pt", weights_only=True)["model"])
    loaded = load_official(base / "encoder.pt")  # strict official format, the predictor gone
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), enc.state_dict().values()))
    assert load_official_tokenizer(base / "tokenizer.pt").num_codes == load_official_tokenizer(ckpts["tokenizer"]).num_codes
    mtimes = [(base / f).stat().st_mtime_ns for f in ("encoder.pt", "tokenizer.pt")]
    stage2(ft)
    assert [(base / f).stat().st_mtime_ns for f in ("encoder.pt", "tokenizer.pt")] == mtimes
    stage2(tmp_path / "esp.pt")
    assert load_official(base / "encoder.pt").config.fbank_mean == ESPNET_FBANK_MEAN


# ---------------------------------------------------------------- Hugging Face specs
def test_hub_specs_parse():
    f = parse_hub_spec("hf://owner/repo/dir/BEATs.pt")
    assert (f.repo_id, f.filename, f.revision, f.repo_type) == ("owner/repo", "dir/BEATs.pt", None, None)
    assert parse_hub_spec("hf://owner/repo@v1/BEATs.pt").revision == "v1"
    assert parse_hub_spec("hf://owner/repo/BEATs.pt@abc").revision == "abc"
    assert parse_hub_spec("hf://datasets/owner/repo/x.pt").repo_type == "dataset"
    u = parse_hub_spec("https://huggingface.co/owner/repo/resolve/main/a/b.pt?download=true")
    assert (u.repo_id, u.filename, u.revision) == ("owner/repo", "a/b.pt", "main")
    from pathlib import Path  # CLI options typed as paths collapse "//": still the same spec

    assert parse_hub_spec(str(Path("hf://owner/repo/dir/BEATs.pt"))) == f
    assert parse_hub_spec(str(Path("https://huggingface.co/owner/repo/resolve/main/a/b.pt"))).filename == "a/b.pt"
    assert parse_hub_spec("exp/base/encoder.pt") is None and parse_hub_spec("/abs/hf.pt") is None
    for bad in ("hf://owner/repo", "hf://owner//x.pt", "https://huggingface.co/owner/repo"):
        with pytest.raises(ValueError, match="expected|must point to a file"):
            parse_hub_spec(bad)


@pytest.mark.timeout(60)
def test_hub_files_resolve_offline_from_the_cache(tmp_path, offline_hub):
    enc = _encoder(seed=8)
    save_official(enc, tmp_path / "m.pt")
    commit = fill_hub_cache(offline_hub, "owner/beats", {"sub/m.pt": tmp_path / "m.pt"})
    for spec in ("hf://owner/beats/sub/m.pt", f"hf://owner/beats@{commit}/sub/m.pt",
                 "https://huggingface.co/owner/beats/resolve/main/sub/m.pt"):
        path = resolve_checkpoint_path(spec)
        assert path.is_file() and offline_hub in path.parents, spec
    loaded = load_beats_encoder("hf://owner/beats/sub/m.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), enc.state_dict().values()))
    from espnet2_sonar.eval.checkpoints import load_encoder

    assert isinstance(load_encoder("hf://owner/beats/sub/m.pt"), BeatsEncoder)
    assert resolve_checkpoint_path(tmp_path / "m.pt") == tmp_path / "m.pt"  # local paths pass through


@pytest.mark.timeout(60)
def test_a_hub_file_missing_offline_fails_with_a_clear_message(offline_hub):
    with pytest.raises(HubFileUnavailable) as err:
        load_beats_encoder("hf://owner/none/BEATs.pt")
    msg = str(err.value)
    assert "hf://owner/none/BEATs.pt" in msg and str(offline_hub) in msg and "HF_HUB_OFFLINE" in msg
    assert "hf download owner/none BEATs.pt" in msg and "local file path" in msg
