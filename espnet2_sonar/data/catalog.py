"""Where each packaged audio file goes: which set, which label, which source collection.

``route(package, member)`` returns a ``Route`` (or None: not used). Labels come from file
names and folders; the mappings are documented in egs2/debian_sounds/sonar1/README.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

TASKS = ("voice_gender", "prior_sfx", "instrument", "animal", "foley")
"""voice_gender and prior_sfx are the old tasks: held-out recordings of the prior pool's own
sources (game voices and sound effects). instrument, animal, foley are the new domains' tasks."""
POOLS = ("prior", "music", "bio", "env", "speech")


@dataclass(frozen=True)
class Route:
    """Destination of one source file.

    target: a task (``TASKS``) or pool (``POOLS``) name.
    label: the class for a task, None for a pool.
    collection: source collection; animal splits are made per collection.
    speaker: a speaker (voice, unit or creature) where one is known, else None (utterance =
        speaker); it is also the split unit, so one voice never spans two splits.
    fallback: pool that takes the file when its task does not (class dropped, capped).
    """

    target: str
    label: str | None = None
    collection: str = ""
    speaker: str | None = None
    fallback: str | None = None


def _stem(member: str) -> str:
    return PurePosixPath(member).stem


def _lang(code: str) -> str:
    """Locale directory / suffix -> language code ('en_GB' -> 'en', 'pt_BR' -> 'pt')."""
    return code.split("_")[0].split("@")[0].lower()


def _speech(pkg: str, lang: str, collection: str) -> Route:
    # Spoken language ID is retired: every speech source has one voice per language (or
    # another channel per split), so no features learnt it across voices. Speech is a pool.
    return Route("speech", collection=collection)


# ---------------------------------------------------------------- speech sources
def _asterisk(pkg: str, member: str) -> Route | None:
    parts = member.split("/")
    if "silence" in parts:  # digital silence prompts
        return None
    m = re.match(r"asterisk-core-sounds-([a-z]{2})-", pkg)
    if m:
        return _speech(pkg, m.group(1), "asterisk-core-sounds")
    m = re.match(r"asterisk-prompt-([a-z]{2})-", pkg)
    if m:
        return _speech(pkg, m.group(1), "asterisk-prompt")
    return None


def _klettres(pkg: str, member: str) -> Route | None:
    m = re.match(r"usr/share/klettres/([^/]+)/", member)
    return _speech(pkg, _lang(m.group(1)), "klettres") if m else None


def _ktuberling(pkg: str, member: str) -> Route | None:
    m = re.match(r"usr/share/ktuberling/sounds/([^/]+)/", member)
    return _speech(pkg, _lang(m.group(1)), "ktuberling") if m else None


_TUX_DESC = re.compile(r"_desc(?:_([a-z]{2,3}(?:_[A-Za-z]{2,4})?))?$")
_TUX_LOCALE = re.compile(r"_([a-z]{2}(?:_[A-Z]{2}|_[a-z]{2})?)$")
_TUX_ANIMALS = {
    "songbird": ("blackbird", "lark", "cuckoo", "crow"),
    "bird": ("quetzal", "tucan", "nandou", "heron"),
    "raptor": ("owl", "vulture"),
    "duck": ("duck", "drake", "gander"),
    "chicken": ("hen", "rooster", "turkey"),
    "seabird": ("seagull", "penguin"),
    "insect": ("bee", "grasshopper", "hornet", "mosquito", "xanthia"),
    "frog": ("frog",),
    "primate": ("chimp", "gorilla"),
    "marine_mammal": ("dolphin", "orca", "sea_lion", "whale"),
    "bear": ("bear",),
    "cattle": ("bison", "bull", "cow"),
    "goat": ("goat", "mountaingoat"),
    "sheep": ("ram", "sheep"),
    "camel": ("camel", "dromedary"),
    "big_cat": ("lion", "tiger"),
    "deer": ("caribou", "deer", "doe"),
    "canid": ("dog", "fox"),
    "elephant": ("elephant",),
    "donkey": ("donkey",),
    "horse": ("horse", "zebra"),
    "pig": ("pig",),
    "rodent": ("beaver", "mouse", "rabbit", "squirrel"),
    "marsupial": ("koala", "wombat"),
}


def _tux_animal(stem: str) -> str | None:
    base = re.sub(r"_(white|lamb|golden\d*|greatblue_flying)$", "", stem.lower())
    for label, names in _TUX_ANIMALS.items():
        if base in names:
            return label
    return None


def _tuxpaint_stamps(pkg: str, member: str) -> Route | None:
    stem = _stem(member)
    m = _TUX_DESC.search(stem)
    if m:
        return _speech(pkg, _lang(m.group(1) or "en"), "tuxpaint-stamps")
    m = _TUX_LOCALE.search(stem)
    if m and "/symbols/" in member:
        return _speech(pkg, _lang(m.group(1)), "tuxpaint-stamps")
    if "/stamps/animals/" in member:
        label = _tux_animal(stem)
        return Route("animal", label, pkg, fallback="bio") if label else Route("bio")
    if "/stamps/hobbies/music/" in member:
        return Route("music")
    return Route("env")


# ---------------------------------------------------------------- music
def _fluid_sf2(pkg: str, member: str) -> Route | None:
    return Route("instrument", collection=pkg) if member.lower().endswith(".sf2") else None


def _music_pkg(pkg: str, member: str) -> Route | None:
    return Route("music")


# ---------------------------------------------------------------- games: animals, foley, pools
_ZERO_AD_FOLEY = [  # (path regex, foley class), first match wins
    (r"actor/singlesteps/|actor/human/movement/", "footsteps"),
    (r"actor/mounted/movement/", "hoofsteps"),
    (r"actor/gate/", "door"),
    (r"resource/construction/con_saw", "saw"),
    (r"resource/construction/con_wood", "hammering"),
    (r"resource/construction/con_stone", "stone_work"),
    (r"resource/lumbering/", "wood_chop"),
    (r"resource/mining/", "mining"),
    (r"resource/farming/", "hoeing"),
    (r"resource/foraging/", "foraging"),
    (r"resource/gathering/gather_field", "harvesting"),
    (r"resource/gathering/gather_fruit", "fruit_picking"),
    (r"resource/gathering/gather_meat", "butchering"),
    (r"attack/impact/arrow", "arrow_impact"),
    (r"attack/impact/shield", "shield_hit"),
    (r"attack/impact/sling", "sling_impact"),
    (r"attack/weapon/sword", "sword"),
    (r"attack/weapon/(spear|pike|jav)_attack", "spear"),
    (r"attack/weapon/(bow_attack|arrowfly)", "bow"),
    (r"attack/weapon/sling", "sling_throw"),
    (r"ambient/water/", "water"),
    (r"ambient/weather/wind", "wind"),
]
_ZERO_AD_ANIMAL = [
    (r"fauna/animal/camel|fauna/death/death_camel", "camel"),
    (r"fauna/animal/cattle", "cattle"),
    (r"fauna/animal/chicken", "chicken"),
    (r"fauna/animal/elephant", "elephant"),
    (r"fauna/animal/horse|fauna/death/death_horse", "horse"),
    (r"fauna/animal/lion", "big_cat"),
    (r"fauna/animal/pig", "pig"),
    (r"fauna/animal/sheep", "sheep"),
    (r"fauna/death/goat", "goat"),
]


_ZERO_AD_VOICE = re.compile(r"voice/([a-z]+)/civ/civ_(male|female)_")
_ZERO_AD_DEATH = re.compile(r"actor/human/death/(male|female)_death")


def _zero_ad(pkg: str, member: str) -> Route | None:
    if "!/audio/" not in member:
        return None
    inner = member.split("!/audio/", 1)[1]
    m = _ZERO_AD_VOICE.match(inner)
    if m:  # one voice per (civilisation, gender): the split unit
        civ, sex = m.groups()
        return Route("voice_gender", sex, f"{pkg}/{civ}", f"0ad-{civ}-{sex}", fallback="prior")
    m = _ZERO_AD_DEATH.match(inner)
    if m:
        return Route("voice_gender", m.group(1), f"{pkg}/death", f"0ad-{_stem(member)}", fallback="prior")
    if re.match(r"interface/(select|complete|ui)/", inner):
        return Route("prior_sfx", "interface", pkg, f"0ad-{_stem(member)}", fallback="prior")
    for pat, label in _ZERO_AD_ANIMAL:
        if re.search(pat, inner):
            return Route("animal", label, pkg, fallback="bio")
    for pat, label in _ZERO_AD_FOLEY:
        if re.match(pat, inner):
            return Route("foley", label, pkg, fallback="env")
    if inner.startswith(("voice/", "interface/", "music/")):
        return Route("prior")
    if inner.startswith(("ambient/dayscape/", "actor/fauna/")):
        return Route("bio")
    return Route("env")


_MINETEST_FOLEY = [
    (r"_footstep", "footsteps"),
    (r"default_dig_choppy", "wood_chop"),
    (r"default_dig_cracky", "mining"),
    (r"default_break_glass", "glass_break"),
    (r"^doors_|^xpanes_.*door", "door"),
    (r"^fire_fire|^fire_small|^fire_large", "fire"),
    (r"^env_sounds_water", "water"),
    (r"default_gravel_dig|default_gravel_dug|default_dig_crumbly", "digging"),
]


def _minetest(pkg: str, member: str) -> Route | None:
    stem = _stem(member)
    for pat, label in _MINETEST_FOLEY:
        if re.search(pat, stem):
            return Route("foley", label, pkg, fallback="env")
    return Route("env")


def _megaglest(pkg: str, member: str) -> Route | None:
    stem = _stem(member).lower()
    work = {"worker_mine": "mining", "worker_harvest_wood": "wood_chop", "anvil": "anvil",
            "worker_build": "hammering"}
    for key, label in work.items():
        if "/commondata/" in member and re.fullmatch(rf"{key}\d*", stem):
            return Route("foley", label, pkg, fallback="env")
    if "/music/" in member:
        return Route("music")
    if "/tilesets/" in member:
        for key, label in (("chicken", "chicken"), ("rooster", "chicken"), ("wolf", "canid"),
                           ("owl", "raptor"), ("hawk", "raptor"), ("cow", "cattle")):
            if key in stem:
                return Route("animal", label, pkg, fallback="bio")
        return Route("env") if stem.startswith(("rain", "wind")) else Route("bio")
    unit = re.search(r"/units/([^/]+)/sounds/", member)
    u = unit.group(1) if unit else ""
    animal = {"chicken": "chicken", "bull": "cattle", "sheep": "sheep", "elephant": "elephant"}.get(u)
    if animal and "walk" not in stem:
        return Route("animal", animal, pkg, fallback="bio")
    if (u in ("thunderbird", "eagle_pillar") and stem.startswith("eagle")) and "fly" not in stem:
        return Route("animal", "raptor", pkg, fallback="bio")
    if "/commondata/" in member and stem.startswith(("cow_", "pig_")):
        return Route("animal", "cattle" if stem.startswith("cow") else "pig", pkg, fallback="bio")
    if "/water_sounds/" in member:
        return Route("env")
    if unit or "/commondata/" in member:
        m = _UNIT_ACTION.match(stem)
        if m:  # unit voices and combat sounds; the unit (its voice) is the split unit
            who = f"{_faction(member)}/{u}" if unit else f"common/{m.group(1)}"
            return Route("prior_sfx", _UNIT_ACTIONS[m.group(2)], pkg, f"megaglest-{who}", fallback="prior")
    return Route("prior")


def _faction(member: str) -> str:
    m = re.search(r"/factions/([^/]+)/", member)
    return m.group(1) if m else "common"


# megaglest unit sound stems: '<unit>_<action><take>' (commondata) or '<action><take>' (unit dirs)
_UNIT_ACTION = re.compile(r"^(?:(.+?)_)?(ack|select|attack|die|hit)\d*$")
_UNIT_ACTIONS = {"ack": "voice", "select": "voice", "attack": "attack", "die": "death", "hit": "pain"}

_WESNOTH_ATTACK = re.compile(
    r"^(axe|bow|bow-puny|club|crossbow|dagger-swish|dart|flail|hatchet|knife|mace|sling|sling-big|spear|staff"
    r"|sword|throwing-knife|throw|fist|claws|bite|bite-small|pincers|tail|net|thunderstick|dragonstick|gunshot"
    r"|squishy-strike|mud-fist|mud-glob|ink)(-fire)?(-miss)?-?\d*$")
_WESNOTH_MAGIC = re.compile(r"^(magic|magicmissile|lightning|flame-big|entangle|heal|petrified|slowed|poison)")
_WESNOTH_CRY = re.compile(r"^([a-z-]+?)-(die|hit)-?\d*$")


def _wesnoth(pkg: str, member: str) -> Route | None:
    stem = _stem(member).lower()
    if re.match(r"wolf-", stem):
        return Route("animal", "canid", pkg, fallback="bio")
    if re.match(r"horse-(die|hit)", stem):
        return Route("animal", "horse", pkg, fallback="bio")
    if "/ambient/" in member:
        return Route("bio") if stem.startswith(("birds", "morning", "night")) else Route("env")
    m = _WESNOTH_CRY.match(stem)
    if m:  # the creature's voice is the split unit
        return Route("prior_sfx", "death" if m.group(2) == "die" else "pain", pkg, f"wesnoth-{m.group(1)}",
                     fallback="prior")
    m = _WESNOTH_ATTACK.match(stem)
    if m:
        return Route("prior_sfx", "attack", pkg, f"wesnoth-{m.group(1)}", fallback="prior")
    if _WESNOTH_MAGIC.match(stem):
        spell = re.sub(r"(-miss)?-?\d*$", "", stem)
        return Route("prior_sfx", "magic", pkg, f"wesnoth-{spell}", fallback="prior")
    return Route("prior")


def _widelands(pkg: str, member: str) -> Route | None:
    stem = _stem(member).lower()
    if "/data/music/" in member:
        return Route("music")
    table = (("bird", "songbird"), ("boar", "pig"), ("coyote", "canid"), ("wolf", "canid"),
             ("crickets", "insect"), ("frog", "frog"), ("moose", "deer"), ("stag", "deer"),
             ("donkey", "donkey"), ("horse", "horse"), ("ox_", "cattle"), ("sheep", "sheep"),
             ("duck", "duck"))
    if "/sound/animals/" in member or "/sound/farm/" in member or "/critters/" in member:
        for key, label in table:
            if stem.startswith(key):
                return Route("animal", label, pkg, fallback="bio")
        return Route("bio") if "farm_animal" in stem else Route("env")
    work = (("/woodcutting/fast_woodcutting", "wood_chop"), ("/woodcutting/woodcutting", "wood_chop"),
            ("/saw/", "saw"), ("/sawmill/", "saw"), ("/hammering/hammering", "hammering"),
            ("/stonecutting/", "stone_work"), ("/cutting/stonecutter", "stone_work"),
            ("/smiths/smith", "anvil"), ("/smiths/toolsmith", "anvil"))
    for key, label in work:
        if key in member:
            return Route("foley", label, pkg, fallback="env")
    return Route("env")


def _pykanto(pkg: str, member: str) -> Route | None:
    m = re.search(r"pykanto/data/(?:raw|segmented)/([^/]+)/", member)
    if not m:
        return None
    sub = m.group(1)
    label = {"great_tit": "songbird", "BENGALESE_FINCH": "songbird", "STORM-PETREL": "seabird"}.get(sub)
    if label is None:
        return Route("bio")  # 'AM': an unlabelled dawn soundscape
    return Route("animal", label, f"{pkg}/{sub}", fallback="bio")


_VOCALPY = {  # example file stem -> (label or pool, dataset)
    "bl26lb16": ("songbird", "bfsongrepo"),
    "WhiLbl0010_110411-DC-01": ("songbird", "zebra-finch-repertoire"),
    "fruitfly-song-multichannel": ("insect", "drosophila-song"),
    "bells": ("music", ""),
    "samba": ("music", ""),
    "simple": ("music", ""),
    "flashcam": ("prior", ""),
    # BM003 and deermouse-go are ultrasonic rodent recordings (inaudible at 16 kHz): not used
}


def _vocalpy(pkg: str, member: str) -> Route | None:
    hit = _VOCALPY.get(_stem(member))
    if hit is None:
        return None
    label, dataset = hit
    if label in POOLS:
        return Route(label)
    return Route("animal", label, f"{pkg}/{dataset}", fallback="bio")


def _tuxpaint_data(pkg: str, member: str) -> Route | None:
    return Route("prior_sfx", "interface", pkg, f"tuxpaint-{_stem(member)}", fallback="prior")


_ROUTERS = [
    (r"asterisk-(core-sounds|prompt)-", _asterisk),
    (r"klettres-data$", _klettres),
    (r"ktuberling-data$", _ktuberling),
    (r"tuxpaint-stamps-default$", _tuxpaint_stamps),
    (r"tuxpaint-data$", _tuxpaint_data),
    (r".*-soundfont(-gm)?$|fluid-soundfont-gm$", _fluid_sf2),
    (r"wesnoth-[\d.]+-music$", _music_pkg),
    (r"wesnoth-[\d.]+-data$", _wesnoth),
    (r"0ad-data$", _zero_ad),
    (r"minetest-data$", _minetest),
    (r"megaglest-data$", _megaglest),
    (r"widelands-data$", _widelands),
    (r"pykanto$", _pykanto),
    (r"vocalpy$", _vocalpy),
]


def route(package: str, member: str) -> Route | None:
    """Where ``member`` of ``package`` goes, or None when it is not used."""
    for pat, fn in _ROUTERS:
        if re.match(pat, package):
            r = fn(package, member)
            if r is not None and r.target not in TASKS + POOLS:
                raise ValueError(f"router for {package} returned unknown target {r.target!r}")
            return r
    raise KeyError(f"no routing rules for package {package!r} (add them to catalog.py)")
