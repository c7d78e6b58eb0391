"""SonarModel: loss composition, gradient flow, frozen teacher, DCP as a config."""

import copy

import pytest
import torch
import torch.nn.functional as F

from espnet2_sonar.tokenizer.interop import save_official_tokenizer
from espnet2_sonar.beats.predictor import BeatsPredictor
from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
from espnet2_sonar.sonar.model import SonarModel
from espnet2_sonar.sonar.target_makers import (
    EvolvingTokenizerTargets,
    FrozenTokenizerTargets,
    RandomProjectionTargets,
)
from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer

pytestmark = pytest.mark.timeout(120)


def _batch(seed=0, n=3, seconds=(1.2, 0.9, 1.5)):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([int(16000 * s) for s in seconds[:n]])
    wavs = 0.1 * torch.randn(n, int(lengths.max()), generator=g)
    for i, l in enumerate(lengths):
        wavs[i, l:] = 0.0
    return wavs, lengths


@pytest.fixture(scope="module")
def tokenizer_ckpt(tmp_path_factory):
    """A tiny BEATs tokenizer whose codebook was k-means initialised on audio, in official format."""
    torch.manual_seed(0)
    tok = BeatsTokenizer("tiny").train()
    wavs, lengths = _batch(seed=1, n=3)
    with torch.no_grad():
        tok(wavs, lengths)  # first training step initialises the codebook
    path = tmp_path_factory.mktemp("tok") / "tokenizer.pt"
    save_official_tokenizer(tok.eval(), path)
    return str(path)


def _model(tokenizer_ckpt, lambda_tok, lambda_model, targets="occ", seed=0, occ=None, **config):
    torch.manual_seed(seed)
    enc = SonarBeatsEncoder("tiny", config=dict(dropout=0.0, attention_dropout=0.0))
    pred = BeatsPredictor(enc.config, num_layers=1)
    if targets == "occ":
        tm = EvolvingTokenizerTargets(init=tokenizer_ckpt, occ=dict(max_codes=160, expand_every=0, **(occ or {})))
    else:
        tm = FrozenTokenizerTargets(init=tokenizer_ckpt, max_codes=160)
    teacher = copy.deepcopy(enc) if lambda_model > 0 else None
    return SonarModel(enc, pred, tm, teacher=teacher,
                      config=dict(lambda_tok=lambda_tok, lambda_model=lambda_model, seed=seed, **config))


def _recorded_mask(model, wavs, lengths):
    """(loss, stats, mask): one forward, with the student's mask [B, N] (True = masked) kept."""
    masks = []
    make_mask = model.encoder.make_mask
    model.encoder.make_mask = lambda *args: masks.append(make_mask(*args)) or masks[-1]
    try:
        loss, stats, _ = model(wavs, lengths)
    finally:
        del model.encoder.make_mask
    assert len(masks) == 1
    return loss, stats, masks[0]


def _one_minus_cos_by_item(model, wavs, lengths, mask, teacher_full):
    """L_model from scratch: each item encoded alone (no padding), last layer, 1 - cos of M and
    M0 at M's visible patches, averaged over all visible patches of the batch."""
    student, m0 = model.encoder, model.teacher.module
    num_patches = student.patch_lengths(lengths)
    dist = []
    with torch.no_grad():
        for b in range(len(lengths)):
            wav, length = wavs[b : b + 1, : int(lengths[b])], lengths[b : b + 1]
            item_mask = mask[b : b + 1, : int(num_patches[b])]
            visible = (~item_mask[0]).nonzero().squeeze(1)
            s = student.encode(wav, length, mask=item_mask).layers[-1][0]  # [N_vis, D]
            if teacher_full:
                t = m0.encode(wav, length).layers[-1][0][visible]  # full grid, then M's visible patches
            else:
                t = m0.encode(wav, length, mask=item_mask).layers[-1][0]
            assert s.shape == t.shape == (len(visible), student.config.encoder_embed_dim)
            dist.append(1.0 - F.cosine_similarity(s, t, dim=-1))
    return torch.cat(dist).mean()


def _masked_ce(model, head, wavs, lengths, mask, codes, num_codes):
    """CE of ``head``'s first ``num_codes`` logits against ``codes`` [B, N] at masked valid patches."""
    with torch.no_grad():
        hidden = model.predictor(model.encoder.encode(wavs, lengths, mask=mask))
        n = min(hidden.shape[1], codes.shape[1])
        num_patches = model.encoder.patch_lengths(lengths)
        select = mask[:, :n] & (torch.arange(n)[None, :] < num_patches[:, None])
        logits = head(hidden[:, :n])[..., :num_codes]
        return F.cross_entropy(logits[select], codes[:, :n][select])


def test_total_is_the_weighted_sum_of_its_terms(tokenizer_ckpt):
    wavs, lengths = _batch()
    for lt, lm in [(1.0, 1.0), (0.5, 2.0)]:
        model = _model(tokenizer_ckpt, lt, lm).eval()
        loss, stats, _ = model(wavs, lengths)
        expected = stats["loss_mam"] + lt * stats["loss_tok"] + lm * stats["loss_model"]
        assert torch.allclose(loss, expected, atol=1e-5)
        assert stats["loss_tok"] > 0 and stats["loss_model"] >= 0


def test_zero_lambdas_remove_terms_and_their_modules(tokenizer_ckpt):
    wavs, lengths = _batch()
    full = _model(tokenizer_ckpt, 1.0, 1.0).eval()
    off = _model(tokenizer_ckpt, 0.0, 0.0).eval()
    loss_full, stats_full, _ = full(wavs, lengths)
    loss_off, stats_off, _ = off(wavs, lengths)
    assert "loss_tok" not in stats_off and "loss_model" not in stats_off
    assert off.teacher is None and off.head_old is None
    # same seed, same student weights: the MAM term is identical, the total loses the rest
    assert torch.allclose(stats_full["loss_mam"], stats_off["loss_mam"], atol=1e-6)
    assert torch.allclose(loss_off, stats_off["loss_mam"])
    assert loss_full > loss_off


def test_model_term_is_zero_at_start_and_moves_with_the_student(tokenizer_ckpt):
    """M starts as M0, so L_model = 0; after the student changes it is positive."""
    wavs, lengths = _batch()
    model = _model(tokenizer_ckpt, 0.0, 1.0).eval()
    _, stats, _ = model(wavs, lengths)
    assert float(stats["loss_model"]) < 1e-6
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, stats, _ = model(wavs, lengths)
    assert float(stats["loss_model"]) > 1e-4


@pytest.mark.parametrize("teacher_input", ["visible", "full"])
def test_model_term_is_one_minus_cos_at_the_visible_patches(tokenizer_ckpt, teacher_input):
    """L_model equals 1 - cos(M, M0) over M's visible patches, computed item by item here; with
    ``teacher_input: full`` M0 reads the whole grid, so the term is positive even at M = M0."""
    wavs, lengths = _batch()
    model = _model(tokenizer_ckpt, 0.0, 1.0, teacher_input=teacher_input).eval()
    _, stats, mask = _recorded_mask(model, wavs, lengths)
    if teacher_input == "full":
        assert float(stats["loss_model"]) > 1e-3
    else:
        assert float(stats["loss_model"]) < 1e-6
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    _, stats, mask = _recorded_mask(model, wavs, lengths)
    expected = _one_minus_cos_by_item(model, wavs, lengths, mask, teacher_full=teacher_input == "full")
    assert float(expected) > 1e-4
    assert float(stats["loss_model"]) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    other = _one_minus_cos_by_item(model, wavs, lengths, mask, teacher_full=teacher_input != "full")
    assert abs(float(other) - float(expected)) > 1e-4  # the two teacher inputs are told apart


def test_grown_codebook_heads_read_live_rows_and_tok_targets_t0(tokenizer_ckpt):
    """After T's codebook grows, L_MAM is CE over head_new's first num_codes rows against T's
    codes (grown ids included) and L_tok is CE over head_old's first K0 rows against the codes
    of T0 (the initial tokenizer, loaded here on its own); rows past those are never read."""
    from espnet2_sonar.tokenizer.formats import load_beats_tokenizer

    wavs, lengths = _batch()
    model = _model(tokenizer_ckpt, 1.0, 0.0, occ=dict(novelty_threshold=1.01, expand_trigger=0.0,
                                                       expand_codes=16)).eval()
    k0 = model.targets.num_codes
    with torch.no_grad():
        feats = model.targets.tokenizer.features(wavs, lengths)
        assert model.targets.codebook.expand_(feats.features[~feats.padding_mask]) == 16
    live = model.targets.num_codes
    assert live == k0 + 16 < model.head_new.out_features == 160 and model.targets.old_num_codes == k0
    _, stats, mask = _recorded_mask(model, wavs, lengths)

    t_codes = model.targets.tokenizer.encode(wavs, lengths)
    t0_codes = load_beats_tokenizer(tokenizer_ckpt).eval().encode(wavs, lengths)
    n = min(t_codes.shape[1], mask.shape[1])
    picked = mask[:, :n] & (t_codes[:, :n] >= 0)
    assert (t_codes[:, :n][picked] >= k0).any()  # grown codes are targets of masked patches
    assert (t_codes[:, :n][picked] != t0_codes[:, :n][picked]).any()  # T and T0 disagree here
    expected_mam = _masked_ce(model, model.head_new, wavs, lengths, mask, t_codes, live)
    expected_tok = _masked_ce(model, model.head_old, wavs, lengths, mask, t0_codes, k0)
    assert float(stats["loss_mam"]) == pytest.approx(float(expected_mam), rel=1e-5)
    assert float(stats["loss_tok"]) == pytest.approx(float(expected_tok), rel=1e-5)

    with torch.no_grad():  # rows past the live sizes: no effect
        model.head_new.weight[live:] += 10.0
        model.head_old.weight[k0:] += 10.0
    _, after, _ = _recorded_mask(model, wavs, lengths)
    assert torch.equal(after["loss_mam"], stats["loss_mam"]) and torch.equal(after["loss_tok"], stats["loss_tok"])
    with torch.no_grad():  # the grown rows of head_new are read
        model.head_new.weight[k0:live] += 10.0
    _, after, _ = _recorded_mask(model, wavs, lengths)
    assert not torch.equal(after["loss_mam"], stats["loss_mam"])
    assert torch.equal(after["loss_tok"], stats["loss_tok"])


def test_gradients_reach_the_student_only_and_the_teacher_never_changes(tokenizer_ckpt):
    wavs, lengths = _batch()
    model = _model(tokenizer_ckpt, 1.0, 1.0).train()
    teacher0 = copy.deepcopy(model.teacher.state_dict())
    tok0 = {k: v.clone() for k, v in model.targets.tokenizer.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for step in range(2):
        opt.zero_grad()
        loss, _, _ = model(wavs, lengths)
        loss.backward()
        if step == 0:
            assert all(p.grad is None for p in model.teacher.parameters())
            assert all(p.grad is None for p in model.targets.parameters())
            assert model.encoder.patch_embedding.weight.grad.abs().sum() > 0
            assert model.head_old.weight.grad.abs().sum() > 0
            assert model.predictor.mask_embedding.grad.abs().sum() > 0
        opt.step()
    assert not model.teacher.training  # train() on the parent leaves the teacher in eval
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher0[k]), k
    for k, v in model.targets.tokenizer.named_parameters():
        assert torch.equal(v, tok0[k]), k
    assert int(model.step) == 2


def test_head_old_gets_no_gradient_without_lambda_tok(tokenizer_ckpt):
    wavs, lengths = _batch()
    model = _model(tokenizer_ckpt, 0.0, 1.0).train()
    loss, _, _ = model(wavs, lengths)
    loss.backward()
    assert model.head_old is None
    assert model.head_new.weight.grad.abs().sum() > 0


def test_dcp_equals_sonar_with_the_regularisers_off(tokenizer_ckpt):
    """DCP (frozen tokenizer, lambdas 0) and SONAR (evolving tokenizer, lambdas 0) on the
    same weights give the same loss on the first step (the OCC updates after assigning)."""
    wavs, lengths = _batch()
    sonar = _model(tokenizer_ckpt, 0.0, 0.0, targets="occ").train()
    dcp = _model(tokenizer_ckpt, 0.0, 0.0, targets="frozen").train()
    # same weights (heads have the same max_codes rows in both)
    state = {k: v for k, v in sonar.state_dict().items() if not k.startswith("targets.")}
    missing, unexpected = dcp.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("targets.") for k in missing)
    l_sonar, s_sonar, _ = sonar(wavs, lengths)
    l_dcp, s_dcp, _ = dcp(wavs, lengths)
    assert torch.allclose(l_sonar, l_dcp, atol=1e-6)
    assert torch.allclose(s_sonar["acc_mam"], s_dcp["acc_mam"])


def test_masks_are_reproducible_by_step_and_seed(tokenizer_ckpt):
    wavs, lengths = _batch()
    a = _model(tokenizer_ckpt, 1.0, 1.0, seed=0).eval()
    b = _model(tokenizer_ckpt, 1.0, 1.0, seed=0).eval()
    la, _, _ = a(wavs, lengths)
    lb, _, _ = b(wavs, lengths)
    assert torch.equal(la, lb)
    b.step.fill_(5)  # another step draws another mask
    lc, _, _ = b(wavs, lengths)
    assert not torch.equal(la, lc)


def test_random_projection_targets_for_base_pretraining():
    wavs, lengths = _batch()
    torch.manual_seed(0)
    enc = SonarBeatsEncoder("tiny")
    model = SonarModel(enc, BeatsPredictor(enc.config, num_layers=1),
                       RandomProjectionTargets(quant_n=64, quant_dim=16),
                       config=dict(lambda_tok=0.0, lambda_model=0.0))
    loss, stats, weight = model(wavs, lengths)
    assert torch.isfinite(loss) and int(weight) == 3
    # untrained: CE near log(num_codes)
    assert abs(float(stats["loss_mam"]) - torch.log(torch.tensor(64.0)).item()) < 1.5
    with pytest.raises(ValueError, match="T0"):
        SonarModel(enc, BeatsPredictor(enc.config, num_layers=1), RandomProjectionTargets(quant_n=64, quant_dim=16),
                   config=dict(lambda_tok=1.0, lambda_model=0.0))


def test_unknown_model_conf_key_is_an_error():
    with pytest.raises(ValueError, match="lambda_tokk"):
        SonarModel.__init__  # noqa: B018 (keep import use explicit)
        from espnet2_sonar.sonar.config import SonarConfig

        SonarConfig.from_dict({"lambda_tokk": 1.0})
