"""Raw Kineto / chrome-trace keys, in one place (HTA's default_event_args idea)."""

TRACE_EVENTS = "traceEvents"
DISTRIBUTED_INFO = "distributedInfo"
DEVICE_PROPERTIES = "deviceProperties"
BASE_TIME_NS = "baseTimeNanoseconds"

PH, CAT, NAME, TS, DUR, PID, TID, ARGS = "ph", "cat", "name", "ts", "dur", "pid", "tid", "args"
PH_COMPLETE, PH_META = "X", "M"

CAT_KERNEL, CAT_MEMCPY, CAT_MEMSET = "kernel", "gpu_memcpy", "gpu_memset"
CAT_RUNTIME, CAT_DRIVER = "cuda_runtime", "cuda_driver"
CAT_CPU_OP, CAT_USER_ANNOTATION, CAT_GPU_USER_ANNOTATION = "cpu_op", "user_annotation", "gpu_user_annotation"

STEP_PREFIX = "ProfilerStep#"
RPC = "record_param_comms"

A_CORRELATION = "correlation"
A_EXTERNAL_ID = "External id"
A_STREAM = "stream"
A_COLL_NAME = "Collective name"
A_IN_NELEMS = "In msg nelems"
A_OUT_NELEMS = "Out msg nelems"
A_GROUP_SIZE = "Group size"
A_DTYPE = "dtype"
A_PG_NAME = "Process Group Name"
A_PG_DESC = "Process Group Description"
A_PG_RANKS = "Process Group Ranks"
A_SEQ = "Seq"
A_INPUT_DIMS = "Input Dims"
A_INPUT_TYPE = "Input type"
A_CONCRETE = "Concrete Inputs"

DI_RANK, DI_WORLD, DI_BACKEND, DI_PG_CONFIG = "rank", "world_size", "backend", "pg_config"
