"""Every threshold the diagnosis uses, with its reason. docs/diagnosis.md mirrors this file.

Starting points are the anchors in the product brief (SageMaker Debugger,
AUTOTRAINER, DeepDiagnosis, UMLAUT); where we chose differently, the reason says why.
"""

# Recipe step 1: good on the training data?
# Default bar: halfway from chance (the majority class's share) to perfect. Chance-level
# training accuracy is the unmistakable failure; halfway leaves room for hard data
# (a small MLP on MNIST-1D sits near it) while catching networks that did not learn.
# Regression measures fit in R², whose chance (predicting the training mean) is 0: the same
# rule gives R² >= 0.5, half the targets' variance explained. Every threshold on the fit
# metric below (gaps, swings) applies to R² unchanged, as both run from chance to 1.
TRAIN_FIT_FRACTION = 0.5

# Recipe step 2: overfitting. Judged by the returned model's gap and by the validation
# loss curve, never by an absolute validation bar.
# The validation loss "turned up" when its last value is 10% above its minimum (SageMaker's
# Overfit ratio) at least 2 epochs after that minimum, while the training loss kept falling.
VAL_LOSS_RISE = 0.10
VAL_RISE_MIN_EPOCHS = 2
# ... and it matters only when the accuracy (R²) gap is real (5 points): a model whose validation
# accuracy is within 5 points of its training accuracy generalises as well as it fits.
OVERFIT_MIN_GAP = 0.05
# Without a turned curve, a gap this large relative to the training skill
# ((train - val) / (train - chance)) is overfitting on its own.
OVERFIT_RELATIVE_GAP = 0.35

# Vanishing gradient: first-layer / last-layer gradient norm (AUTOTRAINER: 1e-3), median over
# epochs so a single odd epoch decides nothing; only for networks with 2+ hidden layers.
VANISHING_RATIO = 1e-3
# A milder ratio counts when the network does not fit its training data and the gradient norm
# shrinks steadily toward the input (smaller nearer the input for 80% of neighbouring layers)
# through 3+ hidden layers: a deep tanh stack stuck at chance shrinks only ~1.4x a layer
# (ratio ~0.03 over 10 layers), yet that is what stops it.
VANISHING_RATIO_MILD = 0.1
VANISHING_MONOTONE_SHARE = 0.8
VANISHING_MIN_DEPTH_MILD = 3

# Exploding gradient: any NaN/Inf (all anchors), or the total gradient norm of a sampled step
# 1,000 times its value at the first steps, or a batch loss 100 times the initial loss
# (AUTOTRAINER uses an absolute 1e5; relative works for any loss scale).
EXPLODING_GROWTH = 1e3
EXPLODING_LOSS_FACTOR = 100.0

# Dead ReLU: share of a layer's units that never activate on the probe batch (SageMaker: 50%).
DEAD_FRACTION = 0.5

# Saturation: share of a layer's pre-activations in the flat range (sigmoid |x| > 4.6,
# tanh |x| > 2.65: output within 1% of its bound; DeepDiagnosis: > 50% outside +-5).
SATURATED_FRACTION = 0.5

# Initialisation: at the first step, the activation variance of the last hidden layer against
# the first (SageMaker: variance ratio > 10 between layers); 100x either way over the whole
# depth, for 3+ hidden layers.
INIT_VARIANCE_RATIO = 100.0

# Slow convergence: the training loss fell by less than 10% of its starting value over the run
# (DeepDiagnosis/SageMaker: loss not decreasing), or it was still falling by more than 1% an
# epoch when training ended without fitting the training data.
SLOW_MIN_DECREASE = 0.10
STILL_FALLING_PER_EPOCH = 0.01

# Oscillation: peak-trough swings of the training accuracy of at least 3 points, at least
# 20% as many as there are epochs (AUTOTRAINER), judged from 5 epochs on.
OSCILLATION_GAP = 0.03
OSCILLATION_SHARE = 0.2
OSCILLATION_MIN_EPOCHS = 5

# Class imbalance: the largest training class at least 10 times the smallest.
IMBALANCE_RATIO = 10.0

# Unnormalized input (uploaded data used as given): inputs of magnitude above 10, or features whose
# standard deviations differ more than 100-fold. Networks train best on inputs of order 1 with
# comparable spreads (UMLAUT and DeepDiagnosis check input ranges the same way).
UNNORMALIZED_ABS_MAX = 10.0
UNNORMALIZED_STD_SPREAD = 100.0

# Over-regularised (issue 11): a network that does not fit its training data while L1/L2 or
# dropout is on. By the recipe regularisation is a remedy for overfitting that costs fit on the
# training data; these say when it is the likely cause of the poor fit.
# The penalty's share of the training objective, penalty / (training-mode data loss + penalty),
# at its largest over the epochs: at a quarter of what the optimizer minimises, the penalty's
# gradient competes with the data's. A usual L2 (1e-4..1e-3 on a small MLP) stays at a few
# percent; it rises late only on a network that fits, which this rule never looks at.
PENALTY_SHARE = 0.25
# Weights shrinking: the weight matrices' norm at most half of what it was, either within an
# epoch (an update ratio u = |W1 - W0| / |W1| > 2 means |W0| >= (u - 1) |W1|, by the triangle
# inequality) or from the first epoch's end to the returned epoch. Unregularised training grows
# the weights from their initialisation; a penalty that wins pulls them toward zero.
WEIGHT_SHRINK = 2.0
# Dropout's train/eval gap: the training-mode batch loss (dropout on) over the eval-mode
# training loss, minus 1, over the last epochs (median of the last 3, where the weights move
# least). Dropout that costs 10% of the loss on the data the network trains on is thinning
# the network it needs; without dropout the two differ by a few percent (the weights moving
# during the epoch).
DROPOUT_GAP = 0.10
DROPOUT_GAP_EPOCHS = 3
# Dropout this heavy is blamed on a network that does not fit its training data even without a
# measured gap: when the thinned network learns nothing, the eval-mode network learns nothing
# either and the two losses agree (seen on a run at dropout 0.95 stuck near chance). Srivastava
# et al. (JMLR 2014, section 7.3, figure 9a) find the training error rising steeply once the
# retention probability of hidden units falls below 0.4, i.e. dropout above 0.6.
DROPOUT_HEAVY = 0.6
# Lowering a regulariser that is not removed outright: 100 times weaker for L1/L2 (a crushing
# penalty is usually orders of magnitude too strong), half the rate for dropout.
PENALTY_LOWER_FACTOR = 0.01
DROPOUT_LOWER_FACTOR = 0.5

# Learning rate too high without an explosion (issue 11's symptom-vs-cause pattern): after the
# first epoch, the median weight layer is at least 90% made of that epoch's change
# (update_ratio >= 0.9): the initialisation is forgotten in one epoch. CS231n's rule of thumb is
# an update of ~1e-3 of the weights per step; healthy small MLPs here end epoch 1 at 0.01-0.4.
# Only read on a run that does not fit its training data and whose weights did not shrink
# (a shrinking penalty also makes updates large relative to the weights).
HUGE_UPDATE_RATIO = 0.9
# Lowering a learning rate judged too high (without an explosion): 10 times, the usual grid step.
TOO_HIGH_LR_FACTOR = 0.1
# Momentum at or above this is lowered to LOWER_MOMENTUM when the steps are too large: the
# effective step of SGD with momentum m is lr / (1 - m), ten times lr at 0.9.
HIGH_MOMENTUM = 0.9
LOWER_MOMENTUM = 0.5
# With such momentum, the first fix for steps too large (an explosion, or learning_rate_too_high)
# lowers both in one patch: the rate 10 times (TOO_HIGH_LR_FACTOR) and momentum to LOWER_MOMENTUM,
# a 50-fold smaller effective step at momentum 0.9 (the explosion rule's rate alone cuts 100-fold).
# Measured on the seen runs (tune, the first held_out, issue 11's second pass): the rate alone
# left 1 of 3 momentum-0.9 runs with steps too large under the bar in 10 epochs, and the
# 100-fold cut left the one exploding momentum run too slow to fit; both together fixed all 4.
