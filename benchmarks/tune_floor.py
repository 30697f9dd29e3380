"""Plain Ray Tune's own overhead floor on this machine: trivial trials, nothing else.

What raymlops' AutoML overhead (tune_bench.py) compares with: 40 trials that only report
once, 2 at a time, with and without ``reuse_actors``; overhead per trial is measured the same
way as in tune_bench.py, (wall x parallel - trial compute) / trials.

    python benchmarks/tune_floor.py [--trials 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def _trivial(config: dict) -> None:
    from ray import tune

    tune.report({"score": config["x"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()

    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    for reuse in (True, False):
        started = time.time()
        tuner = tune.Tuner(
            tune.with_resources(_trivial, {"cpu": 1}), param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(num_samples=args.trials, max_concurrent_trials=2,
                                        reuse_actors=reuse, metric="score", mode="max"),
            run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="tune-floor-"),
                                      verbose=0))
        grid = tuner.fit().get_dataframe()
        wall = time.time() - started
        compute = float(grid["time_total_s"].sum())
        first = float((grid["timestamp"] - grid["time_total_s"]).min())
        last = float(grid["timestamp"].max())
        print(f"reuse_actors={reuse}: wall {wall:.1f} s, overhead "
              f"{(wall * 2 - compute) / args.trials:.2f} s/trial (start {first - started:.1f} s, "
              f"teardown {started + wall - last:.1f} s, between "
              f"{((last - first) * 2 - compute) / args.trials:.2f} s/trial)")
    ray.shutdown()


if __name__ == "__main__":
    main()
