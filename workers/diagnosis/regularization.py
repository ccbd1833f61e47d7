"""Over-regularised: regularisation as the cause of a poor fit on the training data (issue 11).

By the recipe, L1, L2 and dropout are remedies for overfitting, and they make the results on
the training data worse. When a network does not fit its training data while one of them is
on, the evidence says whether it is the likely cause:

- the penalty's share of the training objective (the ``penalty`` and ``train_batch_loss`` of
  the curves rows): a penalty that is a large part of what the optimizer minimises pulls the
  weights toward zero instead of toward a fit;
- the weights shrinking (``weight_norm`` and ``update_ratio`` rows): training grows weights
  from their initialisation, a penalty that wins shrinks them;
- dropout's train/eval gap (``train_batch_loss``, dropout on, against ``train_loss``, dropout
  off): how much of the loss on the very data the network trains on dropout costs; or, where
  the network learned nothing and so shows no gap, the rate itself when it is above
  ``DROPOUT_HEAVY``.
"""

from __future__ import annotations

import math

from workers.diagnosis import patches as P
from workers.diagnosis import thresholds as T
from workers.diagnosis.evidence import Run, finite, median
from workers.diagnosis.findings import WARNING, finding


def penalty_share(run: Run) -> float | None:
    """The penalty's largest share of the training objective over the epochs."""
    shares = []
    for row in run.rows:
        penalty, loss = row.get("penalty"), row.get("train_batch_loss")
        if penalty is not None and loss is not None and penalty + loss > 0:
            shares.append(penalty / (penalty + loss))
    return max(shares, default=None)


def weight_shrink(run: Run) -> float | None:
    """How many times smaller the weights became (1 = not at all): the largest of the in-epoch
    bound (update ratio u: the norm before the epoch was at least u - 1 times the norm after)
    and the first-to-returned-epoch ratio of the weights' total norm."""
    bounds = [u - 1 for row in run.rows for u in finite((row.get("update_ratio") or {}).values())]

    def total(row: dict | None) -> float | None:
        norms = finite(((row or {}).get("weight_norm") or {}).values())
        return math.sqrt(sum(v * v for v in norms)) if norms else None

    first, returned = total(run.rows[0]) if run.rows else None, total(run.returned)
    if first and returned:
        bounds.append(first / returned)
    return max(bounds, default=None)


def dropout_gap(run: Run) -> float | None:
    """How much higher the training-mode loss (dropout on) is than the eval-mode loss on the
    training samples, relative to the latter, over the last epochs."""
    gaps = [row["train_batch_loss"] / row["train_loss"] - 1 for row in run.rows[-T.DROPOUT_GAP_EPOCHS:]
            if row.get("train_batch_loss") is not None and row.get("train_loss")]
    return median(gaps)


def over_regularized(run: Run, fitted: bool) -> dict | None:
    config = run.config
    reg = config.regularization
    if fitted or run.diverged or not (reg.l1 or reg.l2 or reg.dropout):
        return None
    share, shrink = penalty_share(run), weight_shrink(run)
    gap = dropout_gap(run)
    penalty_on = bool(reg.l1 or reg.l2)
    penalty_blamed = penalty_on and ((share is not None and share >= T.PENALTY_SHARE)
                                     or (shrink is not None and shrink >= T.WEIGHT_SHRINK))
    dropout_heavy = reg.dropout > T.DROPOUT_HEAVY
    dropout_blamed = bool(reg.dropout) and ((gap is not None and gap >= T.DROPOUT_GAP) or dropout_heavy)
    if not (penalty_blamed or dropout_blamed):
        return None
    # Both measured as a share of what the network is trained on: the penalty's share of the
    # objective, and the share of the training-mode loss that dropout adds.
    penalty_strength = max(share or 0.0, 1 - 1 / shrink if shrink and shrink > 1 else 0.0)
    dropout_strength = max(gap / (1 + gap) if gap is not None and gap > 0 else 0.0,
                           reg.dropout if dropout_heavy else 0.0)
    blamed = [name for name, on, strength in sorted(
        (("penalty", penalty_blamed, penalty_strength), ("dropout", dropout_blamed, dropout_strength)),
        key=lambda item: -item[2]) if on]
    penalty_keys = {k: v for k, v in P.regularizers_on(config).items() if k in ("l1", "l2")}
    off = {"penalty": {k: 0.0 for k in penalty_keys}, "dropout": {"dropout": 0.0}}
    lower = {"penalty": {k: float(f"{v * T.PENALTY_LOWER_FACTOR:.3g}") for k, v in penalty_keys.items()},
             "dropout": {"dropout": float(f"{reg.dropout * T.DROPOUT_LOWER_FACTOR:.3g}")}}
    words = {"penalty": " and ".join(f"{k.upper()} {v:g}" for k, v in penalty_keys.items()),
             "dropout": f"dropout {reg.dropout:g}"}
    strongest, everything_off = blamed[0], P.without_regularization(config)
    remove_strongest = P.suggestion(
        {"regularization": off[strongest]},
        f"Remove the {words[strongest]}: the evidence points at it first, and by the recipe a network that "
        "does not fit its training data needs no regularisation until it does.")
    if everything_off == {"regularization": off[strongest]}:
        fixes = [remove_strongest]
    else:
        # Several regularisers on: removing one leaves the others holding the fit back (seen with
        # L2 removed and dropout 0.5 kept), so they are all lifted first; the recipe adds them back
        # one at a time once the network overfits.
        fixes = [P.suggestion(everything_off, "Turn every regulariser off while the network learns to fit its "
                              "training data: removing one leaves the others holding the fit back, and by the "
                              "recipe a network that does not fit needs none until it overfits."),
                 remove_strongest]
    fixes.append(P.suggestion({"regularization": lower[strongest]}, f"Or keep some {words[strongest]}, much weaker."))
    fixes += [P.suggestion({"regularization": off[other]}, f"Remove the {words[other]}.") for other in blamed[1:]]
    seen = []
    if penalty_blamed:
        seen.append(f"the penalty ({words['penalty']}) reached {share or 0:.0%} of the training objective "
                    f"and the weights shrank {shrink or 1:.1f}-fold")
    if dropout_blamed and gap is not None and gap >= T.DROPOUT_GAP:
        seen.append(f"with dropout on, the loss on the training data is {gap:.0%} higher than without it")
    elif dropout_blamed:
        seen.append(f"dropout {reg.dropout:g} keeps fewer than {1 - T.DROPOUT_HEAVY:.0%} of the units at each step")
    return finding(
        "over_regularized", WARNING, run.rows[-1]["epoch"],
        {"l1": reg.l1, "l2": reg.l2, "dropout": reg.dropout, "penalty_share": share,
         "penalty_share_threshold": T.PENALTY_SHARE, "weight_shrink": shrink,
         "weight_shrink_threshold": T.WEIGHT_SHRINK, "dropout_gap": gap, "dropout_gap_threshold": T.DROPOUT_GAP,
         "dropout_heavy_threshold": T.DROPOUT_HEAVY,
         "blamed": ", ".join(blamed)},
        "Regularisation is holding the network back from fitting its training data: " + "; ".join(seen)
        + ". By the recipe, L1, L2 and dropout are remedies for overfitting that cost fit on the training "
        "data; lower or remove them, and add them back only once the network overfits.", fixes)
