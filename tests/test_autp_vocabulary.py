"""AUTP named-peril cover as field reports name perils: every alias, referral, the gates, the endorsement.

Sources (each test names the clause it pins):

- Jasindo AUTP policy wording (Polis Standar AUTP), BAB III *Risiko yang dijamin*: flood,
  drought, and OPT "dibatasi hanya" penggerek batang, wereng coklat, walang sangit, tikus,
  ulat grayak; blast, bercak coklat, tungro, busuk batang, kerdil hampa. Its exclusions:
  general (fire, theft/loss, deliberate acts, earthquake, volcanic eruption, tsunami,
  nuclear, explosion, business interruption) and special (pests and diseases not named,
  social perils, and item 4f: vehicle impact, industrial smoke and dust, landslide,
  typhoon, storm).
- Kementerian Pertanian, Pedoman Teknis AUTP: Rp 6,000,000/ha, puso = damage intensity
  >= 75 % on >= 75 % of the plot, crop at least 10 days after transplanting (30 for direct
  seeding), notice within 7 days; the programme's cover adds golden apple snail, grassy
  stunt and bacterial leaf blight (the ``programme`` endorsement).
- Entomology for the names: penggerek batang kuning / putih / merah jambu / bergaris =
  Scirpophaga incertulas / S. innotata / Sesamia inferens / Chilo suppressalis (all stem
  borers); hama putih = rice caseworm (Nymphula depunctalis); hama putih palsu = rice
  leaffolder (Cnaphalocrocis medinalis).

Every expectation below is written by hand: 0.4 ha x Rp 6,000,000/ha = Rp 2,400,000 when paid.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from panen.engine.errors import ConfigError
from panen.engine.infra.text import normalise_label
from panen.engine.perils.adjuster import adjust, parse_wording, policy_amounts

REPO = Path(__file__).resolve().parents[1]
WORDING_FILE = REPO / "configs" / "autp.yaml"
SEASON = {"season_start": date(2023, 11, 1), "season_end": date(2024, 3, 31)}
PAID = 2_400_000  # 0.4 ha x Rp 6,000,000/ha

# How the wording treats each peril code, written from the wording's text (BAB III and the
# exclusions), not read from configs/autp.yaml.
COVERED = {"flood", "drought", "brown_planthopper", "stem_borer", "rice_bug", "rats", "armyworm",
           "blast", "brown_spot", "tungro", "stem_rot", "ragged_stunt"}
GENERAL = {"fire", "theft", "deliberate_act", "forest_fire", "explosion", "nuclear", "earthquake",
           "volcanic_eruption", "tsunami", "business_interruption"}
SPECIAL = {"green_leafhopper", "black_bug", "gall_midge", "rice_leaffolder", "rice_caseworm",
           "green_horned_caterpillar", "green_semilooper", "mole_cricket", "seedling_fly", "golden_apple_snail",
           "birds", "bacterial_leaf_blight", "bacterial_leaf_streak", "sheath_blight", "flag_leaf_sheath_rot",
           "cercospora_leaf_spot", "orange_leaf_blight", "grassy_stunt",
           "war", "invasion", "rebellion", "revolution", "usurpation", "riot", "civil_commotion", "strike",
           "lockout", "malicious_act", "terrorism", "sabotage", "looting",
           "vehicle_impact", "industrial_smoke_dust", "landslide", "typhoon", "storm"}
PROGRAMME = {"golden_apple_snail", "grassy_stunt", "bacterial_leaf_blight"}

# Field names from the issue and what each must become: (code, decision, reason).
FIELD_NAMES = {
    # stem borers of every species: covered (BAB III 3, penggerek batang)
    "penggerek batang kuning": ("stem_borer", "paid", "paid"),
    "penggerek batang merah jambu": ("stem_borer", "paid", "paid"),
    "penggerek batang padi putih": ("stem_borer", "paid", "paid"),
    "white stem borer": ("stem_borer", "paid", "paid"),
    "striped stem borer": ("stem_borer", "paid", "paid"),
    "yellow stem borer": ("stem_borer", "paid", "paid"),
    "pink stem borer": ("stem_borer", "paid", "paid"),
    "Scirpophaga innotata": ("stem_borer", "paid", "paid"),
    # floods and drought (BAB III 1-2)
    "banjir bandang": ("flood", "paid", "paid"),
    "banjir rob": ("flood", "paid", "paid"),
    "tergenang": ("flood", "paid", "paid"),
    "kemarau panjang": ("drought", "paid", "paid"),
    # brown planthopper and blast
    "brown plant hopper": ("brown_planthopper", "paid", "paid"),
    "hopperburn": ("brown_planthopper", "paid", "paid"),
    "blas leher": ("blast", "paid", "paid"),
    # the caseworm and the leaffolder are not stem borers: special exclusions
    "hama putih": ("rice_caseworm", "declined", "peril_excluded_special"),
    "hama putih palsu": ("rice_leaffolder", "declined", "peril_excluded_special"),
    # pests and diseases not named in BAB III: special exclusions
    "ulat jengkal palsu hijau": ("green_semilooper", "declined", "peril_excluded_special"),
    "bakteri hawar daun": ("bacterial_leaf_blight", "declined", "peril_excluded_special"),
    "bercak cercospora": ("cercospora_leaf_spot", "declined", "peril_excluded_special"),
    "bercak ceroospora": ("cercospora_leaf_spot", "declined", "peril_excluded_special"),
    "cercospora": ("cercospora_leaf_spot", "declined", "peril_excluded_special"),
    # fire and loss: general exclusions
    "kebakaran gambut": ("forest_fire", "declined", "peril_excluded"),
    "kebakaran alang-alang": ("forest_fire", "declined", "peril_excluded"),
    "kehilangan": ("theft", "declined", "peril_excluded"),
    # social perils: special exclusions
    "pemberontakan": ("rebellion", "declined", "peril_excluded_special"),
    "makar": ("usurpation", "declined", "peril_excluded_special"),
    "invasi": ("invasion", "declined", "peril_excluded_special"),
    "revolusi": ("revolution", "declined", "peril_excluded_special"),
    "penghalangan bekerja": ("lockout", "declined", "peril_excluded_special"),
    "riot": ("riot", "declined", "peril_excluded_special"),
    "strike": ("strike", "declined", "peril_excluded_special"),
    "civil commotion": ("civil_commotion", "declined", "peril_excluded_special"),
    "war": ("war", "declined", "peril_excluded_special"),
    "terrorism": ("terrorism", "declined", "peril_excluded_special"),
    # special exclusion 4f
    "tabrakan kendaraan": ("vehicle_impact", "declined", "peril_excluded_special"),
    "asap": ("industrial_smoke_dust", "declined", "peril_excluded_special"),
    "debu industri": ("industrial_smoke_dust", "declined", "peril_excluded_special"),
    "tanah longsor": ("landslide", "declined", "peril_excluded_special"),
    "angin topan": ("typhoon", "declined", "peril_excluded_special"),
    "badai": ("storm", "declined", "peril_excluded_special"),
    # robust matching: case, separators, accents, repeated spaces, coklat/cokelat, emas/mas
    "Wereng_Batang-COKELAT": ("brown_planthopper", "paid", "paid"),
    "  penggerek   batang  kuning ": ("stem_borer", "paid", "paid"),
    "Blas Léher": ("blast", "paid", "paid"),
    "banjir\u00a0bandang": ("flood", "paid", "paid"),
    "keong emas": ("golden_apple_snail", "declined", "peril_excluded_special"),
    # names nobody can resolve: referred to a person, never declined
    "hama aneh": (None, "referred", "unknown_peril"),
    "wereng": (None, "referred", "unknown_peril"),     # which planthopper? a person must ask
    "penggerek": (None, "referred", "unknown_peril"),
    "xyz": (None, "referred", "unknown_peril"),
}



def plot(i: int, **changes) -> dict:
    """A puso plot that pays under a covered peril: 0.4 ha transplanted, 15 HST, 80 %/80 %, notified in 2 days."""
    row = {"policy_id": f"P{i:04d}", "plot_id": "A", "peril": "banjir", "plot_area_ha": 0.4,
           "damage_intensity_pct": 80.0, "damaged_area_pct": 80.0, "crop_age_days": 15,
           "planting_method": "tanam pindah", "event_date": "2024-01-10", "notice_date": "2024-01-12"}
    row.update(changes)
    return row


def settle(rows: list[dict], wording, **kwargs) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in ("event_date", "notice_date"):
        df[c] = pd.to_datetime(df[c])
    return adjust(df, wording, **{**SEASON, **kwargs})


def every_label(raw: dict) -> list[tuple[str, str]]:
    """(label, code) for every code, name, English name and alias of every peril in the shipped file."""
    out = []
    for code, p in raw["perils"].items():
        for label in (code, p["name"], p["name_en"], *p.get("aliases", [])):
            out.append((label, code))
    return out


# --------------------------------------------------------------------------- one batch, one plot per name


def test_every_name_in_the_shipped_wording_and_every_field_name_in_one_batch(wording, raw_wording):
    """One AUTP batch: a plot per label of every peril, plus the field names of the issue and unknown names.

    Source: Jasindo AUTP wording BAB III (covered) and its general and special exclusions
    (incl. 4f); a name the wording cannot resolve is referred, not declined.
    """
    labelled = every_label(raw_wording)
    assert {code for _, code in labelled} == COVERED | GENERAL | SPECIAL, "a peril without a hand-made expectation"
    expected = []
    for label, code in labelled:
        if code in COVERED:
            expected.append((label, code, "paid", "paid", PAID))
        else:
            expected.append((label, code, "declined", "peril_excluded" if code in GENERAL else
                             "peril_excluded_special", 0))
    for label, (code, decision, reason) in FIELD_NAMES.items():
        expected.append((label, code, decision, reason, PAID if decision == "paid" else 0))
    claims = settle([plot(i, peril=label) for i, (label, *_) in enumerate(expected)], wording)
    assert len(claims) == len(expected) > 300
    got = list(zip(claims["peril"], claims["peril_code"].astype(object).where(claims["peril_code"].notna(), None),
                   claims["decision"].astype(str), claims["reason"].astype(str), claims["indemnity"]))
    assert got == [(lab, code, d, r, money) for lab, code, d, r, money in expected]
    assert int(claims["indemnity"].sum()) == PAID * sum(1 for e in expected if e[2] == "paid")
    assert set(claims.loc[claims["decision"] == "referred", "reasons"].astype(str)) == {"unknown_peril"}


def test_white_stem_borer_is_a_stem_borer_and_hama_putih_the_caseworm(wording):
    """The old mislabel: white stem borer (Scirpophaga innotata) is covered; hama putih is not it.

    Source: BAB III 3 (penggerek batang covered); hama putih = Nymphula depunctalis (rice
    caseworm), hama putih palsu = Cnaphalocrocis medinalis (rice leaffolder), both special exclusions.
    """
    c = settle([plot(1, peril="white stem borer"), plot(2, peril="hama putih"), plot(3, peril="hama putih palsu"),
                plot(4, peril="nymphula depunctalis"), plot(5, peril="cnaphalocrocis medinalis")], wording)
    assert list(c["peril_code"].astype(str)) == ["stem_borer", "rice_caseworm", "rice_leaffolder", "rice_caseworm",
                                                 "rice_leaffolder"]
    assert list(c["indemnity"]) == [PAID, 0, 0, 0, 0]
    assert wording.perils["rice_caseworm"].name_en == "rice caseworm"
    assert wording.perils["rice_leaffolder"].name_en == "rice leaffolder"


def test_special_exclusion_4f_is_excluded_not_merely_uncovered(wording):
    """Source: Jasindo AUTP wording, special exclusion 4f (vehicle impact, industrial smoke
    and dust, landslide, typhoon, storm)."""
    for code in ("vehicle_impact", "industrial_smoke_dust", "landslide", "typhoon", "storm"):
        assert wording.coverage(code) == "special_exclusion"
    assert not [c for c in wording.peril_codes if wording.coverage(c) == "not_covered"]


# --------------------------------------------------------------------------- the gates, hand-computed


GATES = [
    # (changes, decision, reason, indemnity) — Pedoman Teknis AUTP: puso 75 %/75 % (">="),
    # 10 HST transplanting / 30 days direct seeding and salibu, 7 days' notice, the season
    ({}, "paid", "paid", PAID),
    ({"damage_intensity_pct": 75.0, "damaged_area_pct": 75.0}, "paid", "paid", PAID),
    ({"damage_intensity_pct": 74.9}, "declined", "below_threshold", 0),
    ({"damaged_area_pct": 74.9}, "declined", "below_threshold", 0),
    ({"crop_age_days": 10}, "paid", "paid", PAID),
    ({"crop_age_days": 9}, "declined", "crop_too_young", 0),
    ({"planting_method": "tabela", "crop_age_days": 30}, "paid", "paid", PAID),
    ({"planting_method": "tabela", "crop_age_days": 29}, "declined", "crop_too_young", 0),
    ({"planting_method": "salibu", "crop_age_days": 29}, "declined", "crop_too_young", 0),
    ({"planting_method": "tanam sembarang"}, "declined", "unknown_planting_method", 0),
    ({"notice_date": "2024-01-17"}, "paid", "paid", PAID),               # 7 days after the event
    ({"notice_date": "2024-01-18"}, "declined", "late_notice", 0),       # 8 days
    ({"event_date": "2023-10-01", "notice_date": "2023-10-02"}, "declined", "outside_cover_period", 0),
    ({"event_date": "2024-05-01", "notice_date": "2024-05-02"}, "declined", "outside_cover_period", 0),
    ({"plot_area_ha": 0.25}, "paid", "paid", 1_500_000),                 # 0.25 x 6,000,000
    ({"plot_area_ha": 1.37}, "paid", "paid", 8_220_000),                 # 1.37 x 6,000,000
    # an unknown name with a gate that fails whatever the peril: declined for that gate
    ({"peril": "hama aneh", "notice_date": "2024-01-18"}, "declined", "late_notice", 0),
    ({"peril": "hama aneh", "damage_intensity_pct": 50.0}, "declined", "below_threshold", 0),
    ({"peril": "hama aneh", "crop_age_days": 5}, "declined", "crop_too_young", 0),
    ({"peril": "hama aneh", "event_date": "2023-10-01", "notice_date": "2023-10-02"}, "declined",
     "outside_cover_period", 0),
    ({"peril": "hama aneh"}, "referred", "unknown_peril", 0),
    # a known excluded peril stays declined for the peril first (coverage comes first)
    ({"peril": "tanah longsor", "notice_date": "2024-01-18"}, "declined", "peril_excluded_special", 0),
]


def test_each_gate_decides_as_hand_computed(wording):
    """Source: Kementerian Pertanian, Pedoman Teknis AUTP (puso >= 75 % / 75 %, 10 / 30 HST,
    7 days' notice, Rp 6,000,000/ha proportional to the area); one policy per plot."""
    rows = [plot(i, **changes) for i, (changes, *_) in enumerate(GATES)]
    c = settle(rows, wording)
    got = list(zip(c["decision"].astype(str), c["reason"].astype(str), c["indemnity"]))
    assert got == [(d, r, m) for _, d, r, m in GATES]
    late_unknown = c.iloc[16]
    assert late_unknown.reasons == "unknown_peril;late_notice", "the audit list keeps the unknown name"


# --------------------------------------------------------------------------- referral through the money


def test_referred_policy_is_unpaid_and_counted_as_referred(wording):
    """A referred claim pays nothing and is not a decline; a policy with a paid plot stays paid.

    Source: the referral rule of panen's adjuster (an unresolved name is not evidence of an
    uninsured loss); Pedoman Teknis AUTP for the Rp 6,000,000/ha.
    """
    rows = [plot(1, peril="hama aneh"),                                   # P0001: referred only
            plot(2, peril="hama putih"),                                  # P0002: declined
            plot(3, peril="hama aneh", plot_id="A"), plot(3, plot_id="B"),  # P0003: paid + referred
            plot(4, peril="hama aneh", plot_id="A"),                      # P0004: referred + declined
            plot(4, peril="hama putih", plot_id="B")]
    policies = pd.DataFrame({"policy_id": ["P0001", "P0002", "P0003", "P0004", "P0005"],
                             "farmer_id": ["F1", "F2", "F3", "F4", "F5"], "area_ha": [0.4, 0.4, 0.8, 0.8, 0.4]})
    df = pd.DataFrame(rows)
    for col in ("event_date", "notice_date"):
        df[col] = pd.to_datetime(df[col])
    claims, at = adjust(df, wording, policies=policies, return_rows=True, **SEASON)
    assert list(claims["decision"].astype(str)) == ["referred", "declined", "referred", "paid", "referred",
                                                    "declined"]
    amounts = policy_amounts(claims, policies, wording, season_start=SEASON["season_start"], claim_rows=at)
    from panen.engine.settlement.rates import POLICY_OUTCOMES

    outcome = [POLICY_OUTCOMES[i] for i in amounts.outcome]
    assert outcome == ["referred", "declined", "paid", "referred", "not_assessed"]
    assert list(amounts.gross) == [0, 0, PAID, 0, 0]
    assert amounts.reason.to_pylist()[:4] == ["unknown_peril", "peril_excluded_special", None,
                                              "unknown_peril;peril_excluded_special"]


# --------------------------------------------------------------------------- endorsements


def test_programme_endorsement_covers_the_pedoman_teknis_pests(wording):
    """Source: Kementerian Pertanian, Pedoman Teknis AUTP — keong mas, kerdil rumput and
    kresek / hawar daun bakteri are covered by the programme, special exclusions of the base wording."""
    names = ["keong mas", "keong emas", "kerdil rumput", "kresek", "hawar daun bakteri", "hama putih", "wereng hijau"]
    base = settle([plot(i, peril=n) for i, n in enumerate(names)], wording)
    assert list(base["indemnity"]) == [0] * 7
    programme = wording.with_endorsements(["programme"])
    assert programme.lifted == PROGRAMME
    assert "Pedoman Teknis" in programme.endorsement_options["programme"].source
    c = settle([plot(i, peril=n) for i, n in enumerate(names)], programme)
    assert list(c["indemnity"]) == [PAID] * 5 + [0, 0]
    assert list(c["reason"].astype(str))[5:] == ["peril_excluded_special"] * 2
    # one peril code still works as an endorsement of its own
    one = wording.with_endorsements(["golden_apple_snail"])
    assert list(settle([plot(1, peril="keong mas"), plot(2, peril="kerdil rumput")], one)["indemnity"]) == [PAID, 0]


@pytest.mark.parametrize(("edit", "key", "message"), [
    (lambda d: d["endorsement_options"]["programme"].update(lifts=["flood"]),
     "endorsement_options.programme.lifts[0]", "already covered"),
    (lambda d: d["endorsement_options"]["programme"].update(lifts=["fire"]),
     "endorsement_options.programme.lifts[0]", "general exclusion"),
    (lambda d: d["endorsement_options"].update(riot={"lifts": ["riot"], "source": "x"}),
     "endorsement_options.riot", "also a peril code"),
    (lambda d: d.update(endorsements=["programm"]), "endorsements[0]", "nor an endorsement option: programme"),
    (lambda d: d["endorsement_options"]["programme"].pop("source"), "endorsement_options.programme.source",
     "required"),
    (lambda d: d["spelling_variants"].update({"wereng batang": "wbc"}), "spelling_variants.wereng batang",
     "one word to one word"),
])
def test_bad_endorsement_options_are_located_errors(raw_wording, edit, key, message):
    """An endorsement can only lift special exclusions (the wording's own rule), and must say its source."""
    data = copy.deepcopy(raw_wording)
    edit(data)
    with pytest.raises(ConfigError) as err:
        parse_wording(data, source="autp.yaml")
    assert any(p.key == key and message in p.message for p in err.value.problems), err.value.problems


def test_run_config_attaches_the_programme_endorsement(tmp_path):
    """``adjuster: {wording: ..., endorsements: [programme]}`` replaces the wording's list; a bad name
    is an error located in the run config."""
    from panen.engine.config import parse_config

    for name in ("policies.csv", "assessments.csv"):
        (tmp_path / name).write_text("x\n")
    cfg = {"season": {"id": "2024-MT1", "start": "2023-11-01", "end": "2024-03-31", "year": 2024},
           "inputs": {"policies": {"path": "policies.csv"}, "assessments": {"path": "assessments.csv"}},
           "products": [], "adjuster": {"wording": str(WORDING_FILE), "endorsements": ["programme"]}}
    config = parse_config(cfg, base_dir=tmp_path)
    assert config.adjuster.lifted == PROGRAMME
    cfg["adjuster"]["endorsements"] = ["programme", "earthquake"]
    with pytest.raises(ConfigError) as err:
        parse_config(cfg, base_dir=tmp_path)
    assert any(p.key == "adjuster.endorsements[1]" and "general exclusion" in p.message for p in err.value.problems)


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(("text", "key"), [
    ("Wereng_Batang  Coklat", "wereng batang coklat"),
    ("BLAS—LEHER", "blas leher"),                      # an em dash
    ("Blas\u00a0Léher", "blas leher"),                 # a no-break space and an accent
    ("ＷＢＣ", "wbc"),                                  # full-width letters
    ("\tkresek\n", "kresek"),
])
def test_normalise_label_ignores_case_accents_and_separators(text, key):
    """Field names match whatever the form or keyboard did to them (panen's matching rule)."""
    assert normalise_label(text) == key


def test_spelling_variants_apply_to_whole_words_only(wording):
    """``cokelat`` reads ``coklat`` (both KBBI spellings) as a word; it never rewrites part of a word."""
    assert wording.peril_code("bercak cokelat") == "brown_spot"
    assert wording._key("cokelatan") == "cokelatan"
    assert np.array_equal(settle([plot(1, peril="Bercak Cokelat")], wording)["indemnity"], [PAID])


# --------------------------------------------------------------------------- end to end


def _autp_only_run(tmp_path: Path) -> Path:
    """An AUTP-only batch: 3 policies; P1 paid (white stem borer), P2 referred (hama aneh), P3 declined (hama putih)."""
    pd.DataFrame({"policy_id": ["P1", "P2", "P3"], "farmer_id": ["F1", "F2", "F3"], "district_id": ["3201"] * 3,
                  "product_id": ["autp"] * 3, "area_ha": [0.4, 0.4, 0.4], "sowing_date": ["2023-11-20"] * 3,
                  "group_id": ["G1"] * 3}).to_csv(tmp_path / "policies.csv", index=False)
    rows = [plot(1, peril="white stem borer"), plot(2, peril="hama aneh"), plot(3, peril="hama putih")]
    for r, pid in zip(rows, ["P1", "P2", "P3"]):
        r["policy_id"] = pid
    pd.DataFrame(rows).to_csv(tmp_path / "assessments.csv", index=False)
    cfg = {"season": {"id": "2024-MT1", "start": "2023-11-01", "end": "2024-03-31", "year": 2024},
           "inputs": {"policies": {"path": "policies.csv"}, "assessments": {"path": "assessments.csv"}},
           "products": [], "adjuster": {"wording": str(WORDING_FILE)}, "output": {"formats": ["csv"]}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tmp_path / "run.yaml"


def test_referred_claim_through_a_run_and_strict(tmp_path, capsys):
    """End to end: the referred plot is listed, unpaid and counted; ``--strict`` fails on it (exit 2).

    Source: Jasindo AUTP wording BAB III (stem borer covered, hama putih not); 0.4 ha x
    Rp 6,000,000/ha = Rp 2,400,000 for the one paid policy.
    """
    from panen.engine.cli import main

    cfg = _autp_only_run(tmp_path)
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 0
    stdout = capsys.readouterr().out
    assert "1 referred to a person (1 plots)" in stdout
    out = tmp_path / "out"
    claims = pd.read_csv(out / "autp_claims.csv", dtype=str)
    assert list(zip(claims["policy_id"], claims["decision"], claims["reason"], claims["indemnity"])) == [
        ("P1", "paid", "paid", "2400000"), ("P2", "referred", "unknown_peril", "0"),
        ("P3", "declined", "peril_excluded_special", "0")]
    ledger = pd.read_csv(out / "payouts.csv", dtype=str).set_index("policy_id")
    assert ledger.loc[["P1", "P2", "P3"], "status"].tolist() == ["paid", "referred", "declined"]
    assert ledger.loc[["P1", "P2", "P3"], "net_payout"].tolist() == ["2400000", "0", "0"]
    summary = pd.read_csv(out / "summary.csv")
    total = summary[summary["level"] == "total"].iloc[0]
    assert (int(total["referred"]), int(total["net_payout"])) == (1, 2_400_000)
    payments = pd.read_csv(out / "payments.csv")
    assert int(payments["amount"].sum()) == 2_400_000
    manifest = (out / "manifest.json").read_text()
    assert '"plots_referred": 1' in manifest and '"policies_referred": 1' in manifest

    # a blank line before the referred row: the message names the line an editor shows
    text = (tmp_path / "assessments.csv").read_text().splitlines(keepends=True)
    (tmp_path / "assessments.csv").write_text("".join(text[:2] + ["\n"] + text[2:]))
    strict = tmp_path / "strict"
    assert main(["run", str(cfg), "--out", str(strict), "--strict", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "assessments.csv, line 4 (row 2), column 'peril'" in err  # header = line 1, blank line 3
    assert "unknown_peril" in err and "'hama aneh'" in err
    assert not strict.exists(), "nothing half-written"
