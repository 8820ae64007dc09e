"""Index payouts against adjusted AUTP indemnity, farmer by farmer: basis risk.

The reference for "did the farmer suffer an insured loss" is the named-peril AUTP
adjuster (:mod:`panen.engine.perils.adjuster`): a farmer had a loss when at least one of his
plots was paid. The index product (rainfall, area yield, NDVI, ...) "forecasts" that loss
with its payout. Each farmer insured by both falls in one cell of the 2 × 2 contingency
table (WMO forecast-verification scores; computed by :mod:`panen.engine.research.scores`)::

                      index pays     index pays nothing
    AUTP loss         hit  a         miss  b
    no AUTP loss      false alarm c  correct negative d

:func:`compare_farmers` builds the per-farmer table (``comparison.csv``);
:func:`basis_risk_summary` reduces it per product and district and per product overall.

Missing data is never "no payout": a farmer whose index policy was withheld for missing
data (ledger ``status = withheld_missing_data``) keeps a row with outcome ``withheld``,
an empty payout and an empty payout event, is left out of every metric, and is counted
in the summary's ``withheld`` column.

Money is integer rupiah throughout; ratios are NaN where their denominator is zero
(never 0/0 → 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from panen.engine.errors import InputError
from panen.engine.infra.keys import as_text, is_in, positions
from panen.engine.research.scores import contingency, ratio, spearman

__all__ = [
    "COMPARISON_COLUMNS",
    "OUTCOMES",
    "SUMMARY_COLUMNS",
    "WITHHELD",
    "basis_risk_summary",
    "compare_farmers",
]

#: The four cells of the contingency table, in the order a, b, c, d.
OUTCOMES: tuple[str, ...] = ("hit", "miss", "false_alarm", "correct_negative")
#: Outcome of a farmer whose index policy was withheld for missing data (not compared).
WITHHELD = "withheld"
#: Columns of ``comparison.csv``, in order.
COMPARISON_COLUMNS: tuple[str, ...] = ("farmer_id", "district_id", "product_id", "sum_insured", "index_payout",
                                       "autp_indemnity", "loss_event", "payout_event", "outcome")
#: Columns of the basis-risk summary, in order.
SUMMARY_COLUMNS: tuple[str, ...] = ("level", "product_id", "district_id", "farmers", "withheld", "hits", "misses",
                                    "false_alarms", "correct_negatives", "pod", "far", "threat_score",
                                    "unpaid_loss_share", "unpaid_loss_amount", "payout_balance", "spearman",
                                    "index_payout", "autp_indemnity")

_LEDGER_REQUIRED = ("farmer_id", "district_id", "product_id", "sum_insured", "net_payout")
_CLAIMS_REQUIRED = ("policy_id", "decision", "indemnity")
_WITHHELD_STATUS = "withheld_missing_data"


def compare_farmers(ledger: pd.DataFrame | pa.Table, claims: pd.DataFrame | pa.Table, *,
                    register: pd.DataFrame | pa.Table | None = None,
                    autp_product_id: str = "autp") -> pd.DataFrame:
    """Per farmer and index product: the index payout beside the adjusted AUTP indemnity.

    Parameters
    ----------
    ledger
        The run's payout ledger (``payouts.parquet``): ``farmer_id, district_id,
        product_id, sum_insured [Rp], net_payout [Rp]`` and ``status`` (``paid`` |
        ``no_payout`` | ``withheld_missing_data``); without ``status``, a null
        ``payout_rate`` marks a withheld policy. ``policy_id`` is used to link claims
        that carry no ``farmer_id``. Rows of ``autp_product_id`` are not index products
        and are ignored here. A farmer holding several policies of one product is one
        row (amounts summed; withheld if any of them is).
    claims
        The adjuster's per-plot decisions (``autp_claims.csv``): ``policy_id``,
        ``decision`` (``paid`` | ``declined`` | ``referred``: only ``paid`` counts as an
        adjusted loss; a referred claim is not decided yet), ``indemnity [Rp]`` and, when the adjuster
        had the register, ``farmer_id``. A row without ``farmer_id`` is linked through
        its ``policy_id`` (``register`` first, then the ledger).
    register
        Optional policy register (``policy_id, farmer_id, product_id``). When given, only
        farmers holding an ``autp_product_id`` policy (or having an AUTP claim) are
        compared, and its ``policy_id → farmer_id`` links claims. When None, every
        farmer in the ledger is taken to hold the AUTP cover (as in the demo region,
        where every farmer holds every cover).
    autp_product_id
        Product id of the AUTP cover in the ledger / register.

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, one row per (index product, farmer), sorted by
        ``product_id, district_id, farmer_id``:

        ``farmer_id, district_id, product_id`` (str); ``sum_insured`` [Rp, int64] of the
        index policy; ``index_payout`` [Rp, Int64] net index payout, null when withheld;
        ``autp_indemnity`` [Rp, int64] sum of the farmer's paid AUTP plots (0 when the
        farmer has no claim row: no assessed loss); ``loss_event`` (bool, indemnity > 0);
        ``payout_event`` (boolean, payout > 0, null when withheld); ``outcome``
        (``hit`` | ``miss`` | ``false_alarm`` | ``correct_negative`` | ``withheld``).

        ``attrs["unlinked_claims"]`` / ``attrs["unlinked_indemnity"]``: claim rows (and
        their paid indemnity [Rp]) that could be linked to no farmer; a warning is issued
        when there are any.

    Raises
    ------
    InputError
        A required column is missing from the ledger or the claims.

    References
    ----------
    WMO (2017), *Forecast Verification: Issues, Methods and FAQ* (contingency table); AUTP
    indemnity per Kepmentan (plot-level puso rule), as decided by
    :mod:`panen.engine.perils.adjuster`.

    Examples
    --------
    >>> ledger = pd.DataFrame({"policy_id": ["P1-rain", "P2-rain"], "farmer_id": ["F1", "F2"],
    ...                        "district_id": ["3201", "3201"], "product_id": ["rain", "rain"],
    ...                        "sum_insured": [6_000_000, 3_000_000], "net_payout": [600_000, 0],
    ...                        "status": ["paid", "no_payout"]})
    >>> claims = pd.DataFrame({"policy_id": ["P2-autp"], "farmer_id": ["F2"], "decision": ["paid"],
    ...                        "indemnity": [3_000_000]})
    >>> compare_farmers(ledger, claims)["outcome"].tolist()
    ['false_alarm', 'miss']
    """
    led = _frame(ledger)
    _require(led, _LEDGER_REQUIRED, "ledger")
    cl = _frame(claims)
    _require(cl, _CLAIMS_REQUIRED, "claims")
    reg = _frame(register) if register is not None else None
    if reg is not None:
        _require(reg, ("policy_id", "farmer_id", "product_id"), "register")

    product = _text(led["product_id"])
    index = pd.DataFrame({
        "farmer_id": _text(led["farmer_id"]),
        "district_id": _text(led["district_id"]),
        "product_id": product,
        "sum_insured": led["sum_insured"].to_numpy(np.int64),
        "net_payout": led["net_payout"].to_numpy(np.int64),
        "withheld": _withheld(led),
    })[(product != autp_product_id).to_numpy()]

    # claims → farmer: the claim's own farmer_id, else through its policy_id
    farmer = _farmer_of_claims(cl, led, reg)
    paid = (_text(cl["decision"]).str.strip().str.lower() == "paid").to_numpy()
    amount = np.where(paid, pd.to_numeric(cl["indemnity"]).fillna(0).to_numpy(np.int64), 0)
    unlinked = farmer.isna().to_numpy()
    if unlinked.any():
        warnings.warn(f"{int(unlinked.sum())} AUTP claim row(s) (Rp {int(amount[unlinked].sum()):,} paid) "
                      "could not be linked to a farmer (no farmer_id, policy_id not in the register or "
                      "ledger); they are left out of the comparison", stacklevel=2)
    indemnity = (pd.Series(amount[~unlinked], index=farmer[~unlinked].to_numpy())
                 .groupby(level=0, sort=False).sum())

    # the compared population: index farmers who also hold the AUTP cover
    if reg is not None:
        holders = _text(reg["farmer_id"])[(_text(reg["product_id"]) == autp_product_id).to_numpy()]
        index = index[is_in(index["farmer_id"], [holders.dropna(), indemnity.index])]

    # a farmer's district is the smallest of his policies' districts: taken as the min of
    # sorted integer codes (the min of a text column per group cost 6.6 s at 7.5M rows)
    d_code, d_names = pd.factorize(index["district_id"], sort=True)
    index = index.assign(district_id=d_code)
    grouped = index.groupby(["product_id", "farmer_id"], sort=False)
    per = grouped.agg(district_id=("district_id", "min"), sum_insured=("sum_insured", "sum"),
                      net_payout=("net_payout", "sum"), withheld=("withheld", "any")).reset_index()
    per["district_id"] = pd.Series(np.asarray(d_names, dtype=object)[per["district_id"].to_numpy()], dtype="str")

    withheld = per["withheld"].to_numpy(bool)
    payout = per["net_payout"].to_numpy(np.int64)
    at = positions(per["farmer_id"], indemnity.index)  # Series.map took 3 s for 3M rows
    autp = np.append(indemnity.to_numpy(np.int64), 0)[at]  # at = -1 (no claim) reads the appended 0
    loss = autp > 0
    pays = payout > 0
    outcome = np.select([withheld, loss & pays, loss & ~pays, ~loss & pays],
                        [WITHHELD, "hit", "miss", "false_alarm"], "correct_negative")
    out = pd.DataFrame({
        "farmer_id": per["farmer_id"].astype("str"),
        "district_id": per["district_id"].astype("str"),
        "product_id": per["product_id"].astype("str"),
        "sum_insured": per["sum_insured"].to_numpy(np.int64),
        "index_payout": pd.array(np.where(withheld, 0, payout), dtype="Int64"),
        "autp_indemnity": autp,
        "loss_event": loss,
        "payout_event": pd.array(pays, dtype="boolean"),
        "outcome": pd.Series(outcome, dtype="str"),
    })
    out.loc[withheld, "index_payout"] = pd.NA
    out.loc[withheld, "payout_event"] = pd.NA
    out = out.sort_values(["product_id", "district_id", "farmer_id"], kind="stable").reset_index(drop=True)
    out.attrs["unlinked_claims"] = int(unlinked.sum())
    out.attrs["unlinked_indemnity"] = int(amount[unlinked].sum())
    return out[list(COMPARISON_COLUMNS)]


def basis_risk_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Contingency counts, skill scores and money measures of basis risk.

    Parameters
    ----------
    comparison
        As returned by :func:`compare_farmers` (withheld rows are counted, not scored).

    Returns
    -------
    pandas.DataFrame
        :data:`SUMMARY_COLUMNS`: one row per (product, district) with ``level =
        "district"``, sorted by product then district, followed by one row per product
        with ``level = "product"`` (``district_id`` null), pooling its farmers:

        ``farmers`` compared (withheld excluded; ``hits + misses + false_alarms +
        correct_negatives == farmers``); ``withheld`` farmers left out for missing data;
        ``hits`` a, ``misses`` b, ``false_alarms`` c, ``correct_negatives`` d;
        ``pod`` = a / (a + b); ``far`` = c / (a + c); ``threat_score`` = a / (a + b + c);
        ``unpaid_loss_amount`` [Rp] = Σ AUTP indemnity of the misses;
        ``unpaid_loss_share`` = unpaid loss amount / Σ AUTP indemnity;
        ``payout_balance`` = Σ index payout / Σ AUTP indemnity;
        ``spearman``: rank correlation between index payout and AUTP indemnity across the
        compared farmers (:func:`panen.engine.research.scores.spearman`);
        ``index_payout``, ``autp_indemnity`` [Rp]: totals over the compared farmers. A
        ratio whose denominator is 0 is NaN.

    Notes
    -----
    POD (probability of detection, hit rate), FAR (false alarm *ratio*) and the threat
    score (critical success index) are the dichotomous scores of forecast verification:
    the index "forecasts" the loss the AUTP adjuster assessed. POD = 1 − the share of
    loss events the index misses, the event-count face of the basis risk that Clarke
    (2016) and Jensen et al. (2016) measure; the unpaid loss share is its money face
    (how much of the assessed loss the index leaves unpaid), the payout balance says
    whether the index pays more (> 1) or less (< 1) than the losses overall, and the
    Spearman correlation whether it pays the worse-hit farmers more.

    References
    ----------
    .. [1] WMO/WWRP Joint Working Group on Forecast Verification Research, "Forecast
       verification: issues, methods and FAQ" (dichotomous forecasts: POD, FAR, threat
       score); Jolliffe, I. T. and Stephenson, D. B. (eds., 2012), *Forecast
       Verification: A Practitioner's Guide in Atmospheric Science*, 2nd ed., Wiley, ch. 3.
    .. [2] Clarke, D. J. (2016), "A theory of rational demand for index insurance",
       *American Economic Journal: Microeconomics* 8(1), 283–306.
    .. [3] Jensen, N. D., Barrett, C. B. and Mude, A. G. (2016), "Index insurance quality
       and basis risk: evidence from northern Kenya", *American Journal of Agricultural
       Economics* 98(5), 1450–1469.
    """
    _require(comparison, ("district_id", "product_id", "index_payout", "autp_indemnity", "outcome"),
             "comparison")
    product = _text(comparison["product_id"]).fillna("").to_numpy(object)
    district = _text(comparison["district_id"]).fillna("").to_numpy(object)
    outcome = comparison["outcome"].to_numpy(object)
    compared = outcome != WITHHELD
    payout = np.where(compared, comparison["index_payout"].to_numpy(np.float64, na_value=0.0), 0.0).astype(np.int64)
    autp = np.where(compared, comparison["autp_indemnity"].to_numpy(np.int64), 0)
    pays = (outcome == "hit") | (outcome == "false_alarm")  # the payout event of a compared farmer
    lost = (outcome == "hit") | (outcome == "miss")         # the AUTP loss event

    p_code, p_names = pd.factorize(product, sort=True)
    d_code, d_names = pd.factorize(district, sort=True)
    parts = []
    for level, code in (("district", p_code * max(len(d_names), 1) + d_code), ("product", p_code)):
        keys, group = np.unique(code, return_inverse=True)
        scores = _scores(group.ravel(), keys.size, compared, pays, lost, payout, autp)
        if level == "district":
            ids = {"product_id": p_names[keys // max(len(d_names), 1)], "district_id": d_names[keys % max(len(d_names), 1)]}
        else:
            ids = {"product_id": p_names[keys], "district_id": np.full(keys.size, None, dtype=object)}
        parts.append(pd.DataFrame({"level": level, **ids, **scores}))
    out = pd.concat(parts, ignore_index=True) if len(comparison) else pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    for col in ("farmers", "withheld", "hits", "misses", "false_alarms", "correct_negatives",
                "unpaid_loss_amount", "index_payout", "autp_indemnity"):
        out[col] = out[col].astype(np.int64)
    for col in ("pod", "far", "threat_score", "unpaid_loss_share", "payout_balance", "spearman"):
        out[col] = out[col].astype(np.float64)
    for col in ("level", "product_id", "district_id"):
        out[col] = out[col].astype("str")
    return out[list(SUMMARY_COLUMNS)]


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _scores(group: np.ndarray, n: int, compared: np.ndarray, pays: np.ndarray, lost: np.ndarray,
            payout: np.ndarray, autp: np.ndarray) -> dict[str, np.ndarray]:
    """Counts, scores and money per group (``group`` codes 0..n−1 of the rows); withheld
    rows are counted, not scored (their ``payout`` and ``autp`` are 0 here). The contingency
    table, its scores and Spearman's ρ are those of :mod:`panen.engine.research.scores`."""

    def total(values: np.ndarray) -> np.ndarray:  # exact int64 sums per group
        out = np.zeros(n, np.int64)
        np.add.at(out, group, values.astype(np.int64))
        return out

    t = contingency(pays[compared], lost[compared], group=group[compared], n_groups=n)
    loss, paid = total(autp), total(payout)
    unpaid = total(np.where(compared & lost & ~pays, autp, 0))
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n + 1))
    kept, pay_o, autp_o = compared[order], payout[order], autp[order]  # gathered once, sliced per group
    rho = np.array([spearman(pay_o[lo:hi][kept[lo:hi]], autp_o[lo:hi][kept[lo:hi]])
                    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)])
    return {
        "farmers": total(compared), "withheld": total(~compared),
        "hits": t.hits, "misses": t.misses, "false_alarms": t.false_alarms, "correct_negatives": t.correct_negatives,
        "pod": t.pod, "far": t.far, "threat_score": t.threat_score,
        "unpaid_loss_share": ratio(unpaid, loss), "unpaid_loss_amount": unpaid,
        "payout_balance": ratio(paid, loss), "spearman": rho,
        "index_payout": paid, "autp_indemnity": loss,
    }


def _frame(table: pd.DataFrame | pa.Table) -> pd.DataFrame:
    return table.to_pandas() if isinstance(table, pa.Table) else table


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks the column(s) {', '.join(missing)} needed to compare index payouts "
                         "with AUTP indemnity")


def _text(column: pd.Series) -> pd.Series:
    """Keys as strings (categoricals and numbers alike); missing and blank stay missing."""
    return as_text(column, blank_is_missing=True)


def _withheld(ledger: pd.DataFrame) -> np.ndarray:
    if "status" in ledger.columns:
        return (_text(ledger["status"]) == _WITHHELD_STATUS).to_numpy(bool)
    if "payout_rate" in ledger.columns:
        return ledger["payout_rate"].isna().to_numpy(bool)
    return np.zeros(len(ledger), bool)


def _farmer_of_claims(claims: pd.DataFrame, ledger: pd.DataFrame, register: pd.DataFrame | None) -> pd.Series:
    """The farmer of each claim row: its ``farmer_id``, else its policy's farmer in the
    register, else in the ledger; missing when none knows it."""
    own = (_text(claims["farmer_id"]) if "farmer_id" in claims.columns
           else pd.Series(pd.NA, index=claims.index, dtype="str"))
    if not own.isna().any():
        return own
    links = []
    for table in (register, ledger):
        if table is not None and "policy_id" in table.columns:
            links.append(pd.Series(_text(table["farmer_id"]).to_numpy(), index=_text(table["policy_id"]).to_numpy()))
    if links:
        link = pd.concat(links)
        link = link[~link.index.duplicated(keep="first") & link.index.notna()]
        at = positions(_text(claims["policy_id"]), link.index)
        found = np.append(link.to_numpy(object), None)[at]  # at = -1 (unknown policy) reads None
        own = own.fillna(pd.Series(found, index=claims.index, dtype="str"))
    return own
