"""Statistics of many training runs: variance, independence, calibration, diversity.

Every estimator works on a study of R runs evaluated on the same n test examples, given as
predictions [R, n] and/or logits [R, n, k] with labels [n]. `report(...)` computes them
all in one streaming pass over chunks of runs (so memory-mapped multi-GB logits work);
the functions below are the individual estimators, written over sufficient statistics
(per-run / per-example correct counts, vote counts, ...) and vectorised over leading axes
where that is useful for Monte Carlo checks. This package imports only numpy, scipy and
jax, never anything of training.
"""

from vmaptrain.estimators.accuracy import accuracy_distribution
from vmaptrain.estimators.binary_tasks import (
    binary_task_analysis,
    binary_task_errors,
    binary_task_partitions,
    kway_lower_bound_variance,
)
from vmaptrain.estimators.calibration import crossfit_calibration
from vmaptrain.estimators.distribution import (
    bootstrap_distribution_variance,
    bootstrap_replicates,
    bootstrap_weights,
    distribution_std,
    distribution_variance,
    distribution_variance_covariance_form,
    split_half_covariance,
)
from vmaptrain.estimators.diversity import (
    disagreement_rate,
    mean_logit_correlation,
    two_model_ensemble_delta,
    variability_reduction,
)
from vmaptrain.estimators.ensemble import ensemble_sizes, logit_accuracy, vote_accuracy
from vmaptrain.estimators.errors import EstimatorInputError
from vmaptrain.estimators.independence import (
    binomial_excess,
    binomial_variance,
    example_error_rates,
    independent_errors_distribution,
    independent_errors_variance,
    poisson_binomial_pmf,
    sample_independent_errors_accuracy,
)
from vmaptrain.estimators.pairs import pair_independence_test
from vmaptrain.estimators.report import Analysis, analyze, report, summarize, to_json
from vmaptrain.estimators.split_half import split_half_correlation, top_quarter_gain
from vmaptrain.estimators.streaming import LogitStatistics, StudyStatistics, collect_statistics

__all__ = [
    "Analysis",
    "EstimatorInputError",
    "LogitStatistics",
    "StudyStatistics",
    "accuracy_distribution",
    "analyze",
    "binary_task_analysis",
    "binary_task_errors",
    "binary_task_partitions",
    "binomial_excess",
    "binomial_variance",
    "bootstrap_distribution_variance",
    "bootstrap_replicates",
    "bootstrap_weights",
    "collect_statistics",
    "crossfit_calibration",
    "disagreement_rate",
    "distribution_std",
    "distribution_variance",
    "distribution_variance_covariance_form",
    "ensemble_sizes",
    "example_error_rates",
    "independent_errors_distribution",
    "independent_errors_variance",
    "kway_lower_bound_variance",
    "logit_accuracy",
    "mean_logit_correlation",
    "pair_independence_test",
    "poisson_binomial_pmf",
    "report",
    "sample_independent_errors_accuracy",
    "split_half_correlation",
    "split_half_covariance",
    "summarize",
    "to_json",
    "top_quarter_gain",
    "two_model_ensemble_delta",
    "variability_reduction",
    "vote_accuracy",
]
