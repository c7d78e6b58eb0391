"""Split and dedupe rules of the corpus builder (no audio needed)."""

import random
from collections import Counter

import pytest

from espnet2_sonar.data.catalog import Route, route
from espnet2_sonar.data.corpus import SubsetSpec, get_subset
from espnet2_sonar.data.splits import Candidate, assign, dedupe, recording_group, split_groups


def _cand(i, route_, group=None, sha=None, source="pkg"):
    return Candidate(f"r{i:04d}", source, f"m/{i}.wav", f"/x/{i}.wav", sha or f"{i:040x}", route_,
                     group=group or f"g{i}")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 40])
def test_split_groups_covers_and_is_seeded(n):
    sizes = {f"g{i}": 1 + (i * 7) % 5 for i in range(n)}
    a = split_groups(sizes, (0.6, 0.15, 0.25), random.Random(3))
    assert a == split_groups(sizes, (0.6, 0.15, 0.25), random.Random(3))
    assert set(a) == set(sizes)
    used = set(a.values())
    assert used == {1: {"train"}, 2: {"train", "test"}}.get(n, {"train", "valid", "test"})
    if n == 40:
        share = Counter()
        for g, s in a.items():
            share[s] += sizes[g]
        total = sum(sizes.values())
        assert abs(share["train"] / total - 0.6) < 0.1 and abs(share["test"] / total - 0.25) < 0.1


@pytest.mark.timeout(30)
def test_dedupe_keeps_one_and_drops_conflicts():
    same = "a" * 40
    clash = "b" * 40
    cands = [
        _cand(1, Route("animal", "cattle", "p1"), sha=same, source="p1"),
        _cand(2, Route("bio"), sha=same, source="p0"),
        _cand(3, Route("foley", "fs_rock"), sha=clash),
        _cand(4, Route("foley", "fs_gravel"), sha=clash),
        _cand(5, Route("env")),
    ]
    kept, dropped = dedupe(cands)
    assert sorted(c.rec_id for c in kept) == ["r0001", "r0005"]  # the labelled copy wins
    reasons = {c.rec_id: why for c, why in dropped}
    assert "conflicting labels" in reasons["r0003"] and "conflicting labels" in reasons["r0004"]
    assert reasons["r0002"].startswith("duplicate of p1:")


@pytest.mark.timeout(30)
def test_animal_split_by_collection_and_no_overlap():
    spec = SubsetSpec(name="t", sources=())
    cands = []
    i = 0
    for coll, n in (("big", 10), ("mid", 5), ("small", 3)):
        for _ in range(n):
            cands.append(_cand(i, Route("animal", "sheep", coll, fallback="bio"), group=f"{coll}/g{i}"))
            i += 1
    for _ in range(4):  # one collection only, 4 recordings: split by recording
        cands.append(_cand(i, Route("animal", "frog", "solo", fallback="bio"), group=f"solo/f{i}"))
        i += 1
    cands.append(_cand(i, Route("animal", "bear", "lonely", fallback="bio"), group="lonely/b"))
    asg = assign(cands, spec, seed=0)
    coll_split = {}
    for s, lst in asg.tasks["animal"].items():
        for c in lst:
            if c.route.label == "sheep":
                assert coll_split.setdefault(c.route.collection, s) == s  # a collection stays whole
    assert coll_split == {"big": "train", "mid": "test", "small": "valid"}
    frogs = Counter(s for s, lst in asg.tasks["animal"].items() for c in lst if c.route.label == "frog")
    assert frogs["train"] >= 1 and frogs["test"] >= 1 and sum(frogs.values()) == 4
    assert [c.route.label for c in asg.pools["bio"]] == ["bear"]  # cannot be split: goes to the pool
    ids = [c.rec_id for lst in asg.tasks["animal"].values() for c in lst] + [c.rec_id for c in asg.pools["bio"]]
    assert len(ids) == len(set(ids)) == len(cands)


@pytest.mark.timeout(30)
def test_speech_is_a_pool_and_the_old_tasks_route_prior_sources():
    # spoken language ID is retired: every speech source goes to the speech pool
    for p, m in (("asterisk-core-sounds-fr-wav", "usr/share/asterisk/sounds/fr/hello.wav"),
                 ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/animals/birds/crow_desc_fr.ogg"),
                 ("ktuberling-data", "usr/share/ktuberling/sounds/fr/hat.ogg")):
        assert route(p, m).target == "speech"
    zero_ad = "usr/share/games/0ad/mods/public/public.zip!/audio/"
    assert route("0ad-data", zero_ad + "voice/greek/civ/civ_female_build_2.ogg") == Route(
        "voice_gender", "female", "0ad-data/greek", "0ad-greek-female", fallback="prior")
    assert route("0ad-data", zero_ad + "actor/human/death/male_death_12.ogg").label == "male"
    assert route("0ad-data", zero_ad + "interface/select/building/sel_temple.ogg").label == "interface"
    assert route("0ad-data", zero_ad + "voice/hellenes/civ/other.ogg").target == "prior"
    glest = "usr/share/games/megaglest/techs/megapack/"
    r = route("megaglest-data", glest + "factions/norsemen/units/swordman/sounds/swordman_ack2.wav")
    assert (r.target, r.label, r.speaker) == ("prior_sfx", "voice", "megaglest-norsemen/swordman")
    assert route("megaglest-data", glest + "factions/magic/units/daemon/sounds/die3.wav").label == "death"
    assert route("megaglest-data", glest + "commondata/sounds/archmage_attack4.wav").speaker == "megaglest-common/archmage"
    assert route("megaglest-data", glest + "commondata/sounds/worker_mine2.wav").target == "foley"
    wes = "usr/share/games/wesnoth/1.16/data/core/sounds/"
    assert route("wesnoth-1.16-data", wes + "orc-small-die-2.ogg").speaker == "wesnoth-orc-small"
    assert route("wesnoth-1.16-data", wes + "crossbow-fire-miss.ogg").label == "attack"
    assert route("wesnoth-1.16-data", wes + "magic-holy-miss-3.ogg").speaker == "wesnoth-magic-holy"
    assert route("wesnoth-1.16-data", wes + "wolf-die-1.ogg").target == "animal"
    assert route("tuxpaint-data", "usr/share/tuxpaint/sounds/bubble.wav").label == "interface"


@pytest.mark.timeout(30)
def test_old_tasks_split_by_speaker_so_no_voice_spans_two_splits():
    spec = get_subset("full")
    cands, i = [], 0
    for civ in ("greek", "latin", "persian", "napatan", "iberian"):
        for sex in ("male", "female"):
            for _ in range(4):
                cands.append(_cand(i, Route("voice_gender", sex, f"0ad/{civ}", f"0ad-{civ}-{sex}", fallback="prior"),
                                   group=f"0ad-{civ}-{sex}"))
                i += 1
    asg = assign(cands, spec, seed=0)
    split_of = {}
    for s, lst in asg.tasks["voice_gender"].items():
        for c in lst:
            assert split_of.setdefault(c.group, s) == s
    assert set(split_of.values()) == {"train", "valid", "test"}
    for sex in ("male", "female"):  # every class is in every split, from other voices
        assert {s for g, s in split_of.items() if g.endswith(f"-{sex}")} == {"train", "valid", "test"}


@pytest.mark.timeout(30)
def test_routes_and_groups():
    assert route("0ad-data", "usr/share/games/0ad/mods/public/public.zip!/audio/resource/lumbering/"
                 "lumber_tree_01.ogg") == Route("foley", "wood_chop", "0ad-data", fallback="env")
    assert route("widelands-data", "usr/share/games/widelands/data/sound/animals/wolf_00.ogg").label == "canid"
    assert route("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/animals/birds/owl.ogg").label == "raptor"
    assert route("asterisk-core-sounds-en-wav", "usr/share/asterisk/sounds/en_US_f_Allison/silence/1.wav") is None
    assert route("vocalpy", "vocalpy/examples/BM003.wav") is None  # ultrasonic: not used
    with pytest.raises(KeyError, match="no routing rules"):
        route("unknown-pkg", "a.wav")
    assert recording_group("x/sheep_die2.wav") == "sheep_die"
    assert recording_group("x/bird1_00.ogg") == "bird1"
    assert recording_group("x/XC46092.wav") == "XC46092"


@pytest.mark.timeout(30)
def test_subset_spec_unknown_key():
    with pytest.raises(ValueError, match="bogus"):
        SubsetSpec.from_dict({"name": "x", "sources": [], "bogus": 1})


@pytest.mark.timeout(30)
def test_a_speaker_in_several_classes_keeps_one_split():
    spec = get_subset("full")
    cands, i = [], 0
    for creature in [f"c{k}" for k in range(12)]:
        for label in ("death", "pain", "attack"):
            for _ in range(2):
                cands.append(_cand(i, Route("prior_sfx", label, "wes", creature, fallback="prior"), group=creature))
                i += 1
    asg = assign(cands, spec, seed=1)
    split_of = {}
    for s, lst in asg.tasks["prior_sfx"].items():
        for c in lst:
            assert split_of.setdefault(c.group, s) == s, c.group
    assert set(split_of.values()) == {"train", "valid", "test"} and len(split_of) == 12
    fixed = split_groups({"a": 1, "b": 1, "c": 1, "d": 1}, (0.6, 0.15, 0.25), random.Random(0),
                         fixed={"a": "test", "z": "train"})
    assert fixed["a"] == "test" and set(fixed.values()) == {"train", "valid", "test"}
