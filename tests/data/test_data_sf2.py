"""SF2 parsing, GM family labels and loop rendering on a SoundFont built here with struct."""

import struct

import numpy as np
import pytest

from espnet2_sonar.data.sf2 import Sf2Error, label_samples, parse_sf2, render_sample


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def make_sf2(path, samples, instruments, presets):
    """samples: [(name, int16 pcm, rate, loop_start, loop_end)] (loop relative to the sample);
    instruments: [(name, [(sample index, sample mode)], with_global_zone)];
    presets: [(name, bank, program, [instrument indices])]."""
    smpl, shdr, pos = b"", b"", 0
    for name, pcm, rate, ls, le in samples:
        smpl += pcm.astype("<i2").tobytes() + bytes(2 * 46)
        shdr += struct.pack("<20sIIIIIBbHH", name.encode(), pos, pos + len(pcm), pos + ls, pos + le,
                            rate, 60, 0, 0, 1)
        pos += len(pcm) + 46
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    inst, ibag, igen = b"", b"", b""
    nbag = ngen = 0
    for name, zones, with_global in instruments:
        inst += struct.pack("<20sH", name.encode(), nbag)
        if with_global:  # a global zone: generators but no sampleID
            ibag += struct.pack("<HH", ngen, 0)
            igen += struct.pack("<HH", 48, 100)  # initialAttenuation
            nbag, ngen = nbag + 1, ngen + 1
        for sid, mode in zones:
            ibag += struct.pack("<HH", ngen, 0)
            igen += struct.pack("<HH", 54, mode) + struct.pack("<HH", 53, sid)
            nbag, ngen = nbag + 1, ngen + 2
    inst += struct.pack("<20sH", b"EOI", nbag)
    ibag += struct.pack("<HH", ngen, 0)
    igen += struct.pack("<HH", 0, 0)
    phdr, pbag, pgen = b"", b"", b""
    nbag = ngen = 0
    for name, bank, program, insts in presets:
        phdr += struct.pack("<20sHHHIII", name.encode(), program, bank, nbag, 0, 0, 0)
        for i in insts:
            pbag += struct.pack("<HH", ngen, 0)
            pgen += struct.pack("<HH", 41, i)
            nbag, ngen = nbag + 1, ngen + 1
    phdr += struct.pack("<20sHHHIII", b"EOP", 0, 0, nbag, 0, 0, 0)
    pbag += struct.pack("<HH", ngen, 0)
    pgen += struct.pack("<HH", 0, 0)
    mod_end = bytes(10)
    body = b"sfbk" + _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"INAM", b"test\0")) \
        + _list(b"sdta", _chunk(b"smpl", smpl)) \
        + _list(b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", mod_end),
                _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag),
                _chunk(b"imod", mod_end), _chunk(b"igen", igen), _chunk(b"shdr", shdr))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _saw(n, period):
    return ((np.arange(n) % period) / period * 20000 - 10000).astype(np.int16)


@pytest.fixture
def sf2_file(tmp_path):
    samples = [
        ("PianoC4", _saw(4000, 100), 8000, 1000, 2000),   # 0.5 s, loop of 1000 points
        ("ViolinA4", _saw(3000, 50), 12000, 500, 1500),
        ("Kick", _saw(800, 40), 8000, 0, 0),              # drum kit only
        ("Shared", _saw(2000, 25), 8000, 0, 0),           # piano and strings presets use it
    ]
    instruments = [
        ("Piano", [(0, 1), (3, 0)], True),
        ("Violin", [(1, 1)], False),
        ("Drums", [(2, 0)], False),
        ("Mixed", [(3, 0)], False),
    ]
    presets = [
        ("Grand Piano", 0, 0, [0]),
        ("Violin", 0, 40, [1, 3]),       # program 40 -> strings
        ("Strings 2", 8, 41, [3]),       # variation bank: still a GM program
        ("Standard Kit", 128, 0, [2]),   # percussion: no family
    ]
    return make_sf2(tmp_path / "tiny.sf2", samples, instruments, presets)


@pytest.mark.timeout(30)
def test_parse_headers(sf2_file):
    sf = parse_sf2(sf2_file)
    assert [(p.name, p.bank, p.program) for p in sf.presets] == [
        ("Grand Piano", 0, 0), ("Violin", 0, 40), ("Strings 2", 8, 41), ("Standard Kit", 128, 0)]
    assert [p.family for p in sf.presets] == ["piano", "strings", "strings", None]
    assert [i.name for i in sf.instruments] == ["Piano", "Violin", "Drums", "Mixed"]
    assert len(sf.instruments[0].zones) == 2  # global zone skipped
    assert sf.instruments[0].zones[0].sample_mode == 1 and sf.instruments[0].zones[1].sample_mode == 0
    assert [s.name for s in sf.samples] == ["PianoC4", "ViolinA4", "Kick", "Shared"]
    s = sf.samples[1]
    assert (s.end - s.start, s.loop_end - s.loop_start, s.sample_rate) == (3000, 1000, 12000)
    assert np.array_equal(np.asarray(sf.data[s.start:s.end]), _saw(3000, 50))


@pytest.mark.timeout(30)
def test_family_labels(sf2_file):
    labels = {lab.sample: lab for lab in label_samples(parse_sf2(sf2_file))}
    assert set(labels) == {0, 1, 3}  # the kick belongs to a drum kit only
    assert labels[0].family == "piano" and labels[1].family == "strings"
    # 'Shared' is used by one piano preset and two strings presets: majority wins
    assert labels[3].votes == {"piano": 1, "strings": 2} and labels[3].family == "strings"
    assert labels[3].instrument == 0  # first instrument that plays it: the split group


@pytest.mark.timeout(30)
def test_render_loops_to_duration(sf2_file):
    sf = parse_sf2(sf2_file)
    zone = sf.instruments[0].zones[0]
    wave, sr = render_sample(sf, 0, zone, duration=1.0)
    assert sr == 8000 and wave.shape == (8000,) and wave.dtype == np.float32
    pcm = _saw(4000, 100) / 32768.0
    assert np.allclose(wave[:2000], pcm[:2000], atol=1e-6)          # attack up to the loop end
    assert np.allclose(wave[2000:3000], pcm[1000:2000], atol=1e-6)  # then the loop repeats
    assert np.allclose(wave[5000:6000], pcm[1000:2000], atol=1e-6)
    assert abs(wave[-1]) < 1e-3  # faded out
    # no loop: a short sample keeps its own length
    short, _ = render_sample(sf, 3, sf.instruments[3].zones[0], duration=1.0)
    assert short.shape == (2000,)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("damage", ["truncate", "not_riff", "missing"])
def test_malformed_names_file(sf2_file, damage):
    if damage == "truncate":
        sf2_file.write_bytes(sf2_file.read_bytes()[:-300])
    elif damage == "not_riff":
        sf2_file.write_bytes(b"OggS" + sf2_file.read_bytes()[4:])
    else:
        sf2_file.unlink()
    with pytest.raises(Sf2Error) as ei:
        parse_sf2(sf2_file)
    assert str(sf2_file) in str(ei.value)
