"""The paper's own numbers (Sohn, Lee, Kim, JIITA 2021, Tables 1-4), for printing beside ours.

Their hardware and software differ from ours: PC = Intel Xeon 2.6 GHz (CPU only) or Nvidia
Titan V, mobile = Samsung Galaxy S10 (Exynos 9820), TensorFlow 2.3, one CPU core. Their AP is
on the full WIDER FACE validation set; ours on the dev split (different images, far less
training data), so neither latency nor AP is directly comparable.
"""

from __future__ import annotations

CITATION = "Sohn, Lee, Kim: Real-time Face and Landmark Localization for Mobile Applications, JIITA 2021"
HARDWARE = (
    "PC: Intel Xeon 2.6 GHz CPU (or Nvidia Titan V GPU); mobile: Samsung Galaxy S10 (Exynos 9820); "
    "TensorFlow 2.3, single CPU core"
)

# Table 1: ms per module, MobileNetV2 (alpha 1.0) at 640 on the PC.
TABLE1: dict[str, dict[str, float]] = {
    "with GPU": {"backbone": 3.50, "fpn": 1.48, "header": 1.37, "nms": 9.64, "total": 15.99},
    "CPU only": {"backbone": 105.40, "fpn": 1.72, "header": 12.32, "nms": 43.47, "total": 162.90},
}

# Table 2: ms on mobile, alpha 1.0 at 640, without / with TensorFlow's dynamic (range) quantization.
TABLE2_MOBILE_MS: dict[str, float] = {"no optimization": 471.00, "dynamic optimization": 350.00}
SIZE_REDUCTION = 4.0
""""The size of the model stored by this conversion is reduced by 4 times"."""

# Table 3: ms; PC = float (TensorFlow, CPU only), mobile = dynamic optimization.
TABLE3_MS: dict[tuple[float, int], dict[str, float]] = {
    (1.0, 640): {"pc": 162.90, "mobile": 350.0},
    (1.0, 320): {"pc": 53.97, "mobile": 96.0},
    (0.35, 640): {"pc": 92.95, "mobile": 138.0},
    (0.35, 320): {"pc": 31.97, "mobile": 38.0},
}

# Table 4: mean AP (IoU 0.5), full WIDER FACE val.
TABLE4_AP: dict[tuple[float, int], dict[str, float]] = {
    (1.0, 640): {"easy": 0.91, "medium": 0.86, "hard": 0.55},
    (1.0, 320): {"easy": 0.87, "medium": 0.83, "hard": 0.54},
    (0.35, 640): {"easy": 0.89, "medium": 0.83, "hard": 0.51},
    (0.35, 320): {"easy": 0.84, "medium": 0.80, "hard": 0.50},
}


def nms_share_cpu() -> float:
    """The paper's share of NMS in the CPU-only total (Table 1): about 27 %."""
    row = TABLE1["CPU only"]
    return row["nms"] / row["total"]


def as_dict() -> dict:
    """Everything above, JSON-ready."""
    return {
        "citation": CITATION,
        "hardware": HARDWARE,
        "table1_ms": TABLE1,
        "table1_nms_share_cpu": round(nms_share_cpu(), 4),
        "table2_mobile_ms": TABLE2_MOBILE_MS,
        "size_reduction": SIZE_REDUCTION,
        "table3_ms": [{"alpha": a, "input_size": s, **v} for (a, s), v in TABLE3_MS.items()],
        "table4_ap": [{"alpha": a, "input_size": s, **v} for (a, s), v in TABLE4_AP.items()],
    }
