"""The real trace sets the golden test pins (paths relative to the repository root)."""

from __future__ import annotations

REAL = "tests/data/real"
SETS: dict[str, str] = {
    "megatron_tp8_a100": f"{REAL}/megatron_tp8_a100",
    "dlrm_8gpu_v100": f"{REAL}/dlrm_8gpu_v100",
    "h100-world1": f"{REAL}/h100-world1",
    "h200_ddp_world1": f"{REAL}/h200-gpu-check/ddp-world1",
    "h200_fsdp2_world1": f"{REAL}/h200-gpu-check/fsdp2-world1",
    "fsdp2_gloo_cpu": f"{REAL}/fsdp2_gloo_cpu",
    "ddp_gloo_cut_step": f"{REAL}/ddp_gloo_cut_step",
    "netns_amd_default": f"{REAL}/netns_500mbit_amd_epyc/traced_default_bucket25",
    "netns_amd_fp16": f"{REAL}/netns_500mbit_amd_epyc/traced_fp16_bucket4",
    "netns_amd_powersgd": f"{REAL}/netns_500mbit_amd_epyc/traced_powersgd4_bucket200",
    "hta_trace_filter": f"{REAL}/hta/tests/data/trace_filter",
    "hta_nccl_parser_config": f"{REAL}/hta/tests/data/nccl_parser_config",
    "hta_negative_queue_length": f"{REAL}/hta/tests/data/negative_queue_length_values_check",
    "hta_df_index_resolver": f"{REAL}/hta/tests/data/df_index_resolver",
    "hta_trace_diff_control": f"{REAL}/hta/tests/data/trace_diff/control",
    "hta_trace_diff_test": f"{REAL}/hta/tests/data/trace_diff/test",
    "hta_ns_resolution": f"{REAL}/hta/tests/data/ns_resolution_trace",
    "hta_cpu_only": f"{REAL}/hta/tests/data/cpu_only",
    "hta_distributed_info_unavailable": f"{REAL}/hta/tests/data/distributed_info_unavailable",
    "hta_rank_unavailable": f"{REAL}/hta/tests/data/rank_unavailable",
    "hta_amd_mi250": f"{REAL}/hta/tests/data/amd_trace",
    "hta_large_integer": f"{REAL}/hta/tests/data/large_integer_trace",
    "example": "traces/example",
}
EXPECTED = "tests/golden/expected"
COMPRESSED = ("merged.json", "plots.json")
