"""SoundFont 2 (SF2) parsing and rendering of its recorded samples.

Parses the RIFF structure with ``struct``: ``sdta/smpl`` (16-bit sample data) and the
``pdta`` hydra (phdr/pbag/pgen, inst/ibag/igen, shdr). Each sample can be labelled with
the General MIDI instrument family (``program // 8``) of the melodic presets that use it,
and rendered for about a second with its loop.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

GM_FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive",
    "sound_effects",
)
PERCUSSION_BANK = 128  # drum kits: no GM program family

# generator operators (SF2.04 section 8.1.2)
GEN_START_OFS, GEN_END_OFS, GEN_LOOP_START_OFS, GEN_LOOP_END_OFS = 0, 1, 2, 3
GEN_START_COARSE, GEN_END_COARSE, GEN_LOOP_START_COARSE, GEN_LOOP_END_COARSE = 4, 12, 45, 50
GEN_INSTRUMENT, GEN_SAMPLE_ID, GEN_SAMPLE_MODES = 41, 53, 54
SAMPLE_TYPE_RIGHT, SAMPLE_TYPE_ROM = 2, 0x8000


class Sf2Error(ValueError):
    """A malformed SoundFont; the message names the file and the broken part."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class Sf2Sample:
    """A sample header (``shdr``); positions index the ``smpl`` chunk in sample points."""

    index: int
    name: str
    start: int
    end: int
    loop_start: int
    loop_end: int
    sample_rate: int
    original_pitch: int
    sample_link: int
    sample_type: int


@dataclass(frozen=True)
class Sf2Zone:
    """An instrument zone: which sample it plays and how (generators of ``igen``)."""

    sample: int
    sample_mode: int = 0  # 0 no loop, 1 continuous loop, 3 loop until release
    start_offset: int = 0
    end_offset: int = 0
    loop_start_offset: int = 0
    loop_end_offset: int = 0


@dataclass(frozen=True)
class Sf2Instrument:
    index: int
    name: str
    zones: tuple[Sf2Zone, ...]


@dataclass(frozen=True)
class Sf2Preset:
    name: str
    bank: int
    program: int
    instruments: tuple[int, ...]

    @property
    def family(self) -> str | None:
        """GM family of the program, None for percussion kits (bank 128)."""
        return None if self.bank == PERCUSSION_BANK else GM_FAMILIES[(self.program & 127) // 8]


@dataclass
class SoundFont:
    path: Path
    presets: list[Sf2Preset]
    instruments: list[Sf2Instrument]
    samples: list[Sf2Sample]
    smpl_offset: int  # byte offset of the smpl data in the file
    smpl_points: int
    _data: np.ndarray | None = field(default=None, repr=False)

    @property
    def data(self) -> np.ndarray:
        """int16 [smpl_points] sample data, memory-mapped from the file."""
        if self._data is None:
            self._data = np.memmap(self.path, dtype="<i2", mode="r", offset=self.smpl_offset,
                                   shape=(self.smpl_points,))
        return self._data


def _chunks(f: BinaryIO, start: int, end: int, path) -> dict[str, tuple[int, int]]:
    """{chunk id, or 'LIST:<type>': (data offset, size)} of the RIFF chunks in [start, end)."""
    out: dict[str, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        hdr = f.read(12)
        if len(hdr) < 8:
            raise Sf2Error(path, f"truncated chunk header at byte {pos}")
        cid, size = struct.unpack_from("<4sI", hdr)
        data = pos + 8
        if data + size > end:
            raise Sf2Error(path, f"chunk {cid!r} at byte {pos} runs past the end of its parent (truncated file?)")
        key = cid.decode("latin-1")
        if key == "LIST":
            key = "LIST:" + hdr[8:12].decode("latin-1")
        out[key] = (data, size)
        pos = data + size + (size & 1)
    return out


def _records(f: BinaryIO, chunk: tuple[int, int], fmt: str, name: str, path) -> list[tuple]:
    off, size = chunk
    rec = struct.calcsize(fmt)
    if size % rec or size < rec:
        raise Sf2Error(path, f"pdta/{name} size {size} is not a positive multiple of {rec}")
    f.seek(off)
    return list(struct.iter_unpack(fmt, f.read(size)))


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _zones(bags: list[tuple], gens: list[tuple], first: int, last: int, path, what: str):
    """Generator dicts of bags [first, last); amounts kept as raw 2-byte values."""
    zones = []
    for b in range(first, last):
        g0, g1 = bags[b][0], bags[b + 1][0]
        if not (0 <= g0 <= g1 <= len(gens)):
            raise Sf2Error(path, f"{what} bag {b} has a bad generator range {g0}..{g1}")
        zones.append({op: amt for op, amt in gens[g0:g1]})
    return zones


def _s16(raw: int) -> int:
    return raw - 65536 if raw >= 32768 else raw


def parse_sf2(path: str | Path) -> SoundFont:
    """Parse the SF2 at ``path``; raises ``Sf2Error`` naming the broken structure."""
    path = Path(path)
    if not path.is_file():
        raise Sf2Error(path, "missing (no such file)")
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise Sf2Error(path, "not a SoundFont 2 file (no RIFF 'sfbk' header)")
        file_end = min(path.stat().st_size, 8 + struct.unpack_from("<I", head, 4)[0])
        top = _chunks(f, 12, file_end, path)
        for need in ("LIST:sdta", "LIST:pdta"):
            if need not in top:
                raise Sf2Error(path, f"missing {need[5:]} list")
        s_off, s_size = top["LIST:sdta"]
        sdta = _chunks(f, s_off + 4, s_off + s_size, path)
        if "smpl" not in sdta:
            raise Sf2Error(path, "missing sdta/smpl chunk (no sample data)")
        smpl_off, smpl_size = sdta["smpl"]
        p_off, p_size = top["LIST:pdta"]
        pdta = _chunks(f, p_off + 4, p_off + p_size, path)
        for need in ("phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr"):
            if need not in pdta:
                raise Sf2Error(path, f"missing pdta/{need} chunk")
        phdr = _records(f, pdta["phdr"], "<20sHHHIII", "phdr", path)
        pbag = _records(f, pdta["pbag"], "<HH", "pbag", path)
        pgen = _records(f, pdta["pgen"], "<HH", "pgen", path)
        inst = _records(f, pdta["inst"], "<20sH", "inst", path)
        ibag = _records(f, pdta["ibag"], "<HH", "ibag", path)
        igen = _records(f, pdta["igen"], "<HH", "igen", path)
        shdr = _records(f, pdta["shdr"], "<20sIIIIIBbHH", "shdr", path)
    n_points = smpl_size // 2
    samples = []
    for i, (nm, st, en, ls, le, sr, pitch, _corr, link, stype) in enumerate(shdr[:-1]):
        if not (st <= en <= n_points):
            raise Sf2Error(path, f"sample {i} ({_name(nm)!r}) range {st}..{en} is outside smpl ({n_points} points)")
        samples.append(Sf2Sample(i, _name(nm), st, en, ls, le, sr, pitch, link, stype))
    instruments = []
    for i in range(len(inst) - 1):
        zones = []
        for z in _zones(ibag, igen, inst[i][1], inst[i + 1][1], path, "instrument"):
            if GEN_SAMPLE_ID not in z:
                continue  # global zone
            sid = z[GEN_SAMPLE_ID]
            if sid >= len(samples):
                raise Sf2Error(path, f"instrument {i} ({_name(inst[i][0])!r}) uses sample {sid} of {len(samples)}")
            zones.append(Sf2Zone(
                sample=sid,
                sample_mode=z.get(GEN_SAMPLE_MODES, 0) & 3,
                start_offset=_s16(z.get(GEN_START_OFS, 0)) + 32768 * _s16(z.get(GEN_START_COARSE, 0)),
                end_offset=_s16(z.get(GEN_END_OFS, 0)) + 32768 * _s16(z.get(GEN_END_COARSE, 0)),
                loop_start_offset=_s16(z.get(GEN_LOOP_START_OFS, 0)) + 32768 * _s16(z.get(GEN_LOOP_START_COARSE, 0)),
                loop_end_offset=_s16(z.get(GEN_LOOP_END_OFS, 0)) + 32768 * _s16(z.get(GEN_LOOP_END_COARSE, 0)),
            ))
        instruments.append(Sf2Instrument(i, _name(inst[i][0]), tuple(zones)))
    presets = []
    for i in range(len(phdr) - 1):
        nm, program, bank, bag0 = phdr[i][:4]
        used = []
        for z in _zones(pbag, pgen, bag0, phdr[i + 1][3], path, "preset"):
            if GEN_INSTRUMENT in z:
                if z[GEN_INSTRUMENT] >= len(instruments):
                    raise Sf2Error(path, f"preset {_name(nm)!r} uses instrument {z[GEN_INSTRUMENT]} of {len(instruments)}")
                used.append(z[GEN_INSTRUMENT])
        presets.append(Sf2Preset(_name(nm), bank, program, tuple(used)))
    return SoundFont(path, presets, instruments, samples, smpl_off, n_points)


@dataclass(frozen=True)
class SampleLabel:
    """GM family of a sample, from the melodic presets whose instruments play it."""

    sample: int
    family: str
    instrument: int  # first instrument (by index) that plays the sample: the split group
    zone: Sf2Zone  # that instrument's zone for the sample (loop mode and offsets)
    votes: dict  # {family: number of presets} (more than one key: ambiguous)


def label_samples(sf: SoundFont) -> list[SampleLabel]:
    """Label every sample used by a melodic preset with its GM family.

    Percussion kits (bank 128) give no family. A sample played by presets of several
    families takes the family most presets agree on (ties: lowest GM family index);
    right channels of stereo pairs and ROM samples are left out (the left channel stands
    for the pair).
    """
    votes: dict[int, Counter] = {}
    for p in sf.presets:
        fam = p.family
        if fam is None:
            continue
        for s in {z.sample for i in set(p.instruments) for z in sf.instruments[i].zones}:
            votes.setdefault(s, Counter())[fam] += 1
    first_zone: dict[int, tuple[int, Sf2Zone]] = {}
    for inst in sf.instruments:
        for z in inst.zones:
            first_zone.setdefault(z.sample, (inst.index, z))
    out = []
    for s, c in sorted(votes.items()):
        smp = sf.samples[s]
        if smp.sample_type & (SAMPLE_TYPE_ROM | SAMPLE_TYPE_RIGHT):
            continue
        top = max(c.values())
        family = min((f for f, n in c.items() if n == top), key=GM_FAMILIES.index)
        inst, zone = first_zone[s]
        out.append(SampleLabel(s, family, inst, zone, dict(c)))
    return out


def render_sample(
    sf: SoundFont, sample: int, zone: Sf2Zone | None = None, duration: float = 1.0,
    fade: float = 0.01,
) -> tuple[np.ndarray, int]:
    """Play ``sample`` as its zone would for ``duration`` seconds -> (float32 [T], rate).

    Looping zones (sample mode 1 or 3) repeat the loop [loop_start, loop_end) until the
    duration is reached; others play once and are cut at ``duration`` (shorter samples
    keep their own length). A ``fade``-second linear fade-out avoids a click at a cut.
    """
    zone = zone or Sf2Zone(sample)
    smp = sf.samples[sample]
    start = smp.start + zone.start_offset
    end = smp.end + zone.end_offset
    if not (0 <= start < end <= sf.smpl_points):
        raise Sf2Error(sf.path, f"sample {sample} ({smp.name!r}) has an empty or invalid range {start}..{end}")
    if smp.sample_rate <= 0:
        raise Sf2Error(sf.path, f"sample {sample} ({smp.name!r}) has sample rate {smp.sample_rate}")
    want = max(1, int(round(duration * smp.sample_rate)))
    data = np.asarray(sf.data[start:end], dtype=np.float32) / 32768.0
    ls = smp.loop_start + zone.loop_start_offset - start
    le = smp.loop_end + zone.loop_end_offset - start
    looped = zone.sample_mode in (1, 3) and 0 <= ls < le <= len(data) and le - ls >= 8
    if looped and len(data) < want:
        reps = int(np.ceil((want - le) / (le - ls))) + 1 if want > le else 0
        data = np.concatenate([data[:le]] + [data[ls:le]] * reps)
    cut = len(data) > want
    data = data[:want].copy()
    if cut or looped:
        n = min(len(data), max(1, int(fade * smp.sample_rate)))
        data[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return data, smp.sample_rate
