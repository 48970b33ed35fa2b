"""Where runs trained: this machine's line, and a report's line from the runs' summaries."""

from __future__ import annotations

import torch

from gancompare.run.machine import machine, machines


def test_this_machine_names_its_cores_and_accelerator():
    line = machine()
    cpu, cores, accelerator = line.rsplit(", ", 2)
    assert cpu and cores.endswith(" cores") and int(cores.split()[0]) >= 1
    assert accelerator == (torch.cuda.get_device_name() if torch.cuda.is_available()
                           else "no GPU")


def test_a_report_names_the_machines_its_runs_recorded():
    xeon, epyc = "Intel Xeon, 2 cores, no GPU", "AMD EPYC, 2 cores, no GPU"
    assert machines([{"machine": xeon}] * 3) == xeon
    assert machines([{"machine": xeon}] * 2 + [{"machine": epyc}]) == (
        f"{xeon} (2 runs); {epyc} (1 run)")
    assert machines([{"machine": xeon}, {}, {}]) == (
        f"{xeon} (1 run); a machine not recorded (2 runs, trained before summaries "
        "recorded it)")
    assert machines([]) == "no run"
