from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "initial_interval", "backoff_coefficient", "max_interval", "jitter", "non_retryable_error_types")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_ERROR_TYPES_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    initial_interval: float
    backoff_coefficient: float
    max_interval: float
    jitter: float
    non_retryable_error_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_attempts: _Optional[int] = ..., initial_interval: _Optional[float] = ..., backoff_coefficient: _Optional[float] = ..., max_interval: _Optional[float] = ..., jitter: _Optional[float] = ..., non_retryable_error_types: _Optional[_Iterable[str]] = ...) -> None: ...

class ActivityOptions(_message.Message):
    __slots__ = ("retry_policy", "priority", "schedule_to_start_timeout", "start_to_close_timeout", "heartbeat_timeout", "start_delay", "concurrency_key", "concurrency_limit")
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TO_START_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    START_TO_CLOSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    START_DELAY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    retry_policy: RetryPolicy
    priority: int
    schedule_to_start_timeout: float
    start_to_close_timeout: float
    heartbeat_timeout: float
    start_delay: float
    concurrency_key: str
    concurrency_limit: int
    def __init__(self, retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., priority: _Optional[int] = ..., schedule_to_start_timeout: _Optional[float] = ..., start_to_close_timeout: _Optional[float] = ..., heartbeat_timeout: _Optional[float] = ..., start_delay: _Optional[float] = ..., concurrency_key: _Optional[str] = ..., concurrency_limit: _Optional[int] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("message", "type", "non_retryable", "next_retry_delay", "details_json")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    message: str
    type: str
    non_retryable: bool
    next_retry_delay: float
    details_json: str
    def __init__(self, message: _Optional[str] = ..., type: _Optional[str] = ..., non_retryable: _Optional[bool] = ..., next_retry_delay: _Optional[float] = ..., details_json: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence_num", "event_type", "event_data_json", "created_at")
    SEQUENCE_NUM_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    sequence_num: int
    event_type: str
    event_data_json: str
    created_at: float
    def __init__(self, sequence_num: _Optional[int] = ..., event_type: _Optional[str] = ..., event_data_json: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "kind", "workflow_id", "activity_id", "activity_type", "input_json", "attempt", "max_attempts", "heartbeat_timeout", "start_to_close_timeout", "history", "decided_through_seq", "heartbeat_details_json", "traceparent", "history_truncated", "history_after_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    START_TO_CLOSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    workflow_id: str
    activity_id: str
    activity_type: str
    input_json: str
    attempt: int
    max_attempts: int
    heartbeat_timeout: float
    start_to_close_timeout: float
    history: _containers.RepeatedCompositeFieldContainer[Event]
    decided_through_seq: int
    heartbeat_details_json: str
    traceparent: str
    history_truncated: bool
    history_after_seq: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., workflow_id: _Optional[str] = ..., activity_id: _Optional[str] = ..., activity_type: _Optional[str] = ..., input_json: _Optional[str] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., heartbeat_timeout: _Optional[float] = ..., start_to_close_timeout: _Optional[float] = ..., history: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., decided_through_seq: _Optional[int] = ..., heartbeat_details_json: _Optional[str] = ..., traceparent: _Optional[str] = ..., history_truncated: _Optional[bool] = ..., history_after_seq: _Optional[int] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "worker_group", "activity_types", "workflow_types", "max_concurrency", "hostname", "version", "circuit_breakers")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_GROUP_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKERS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    worker_group: str
    activity_types: _containers.RepeatedScalarFieldContainer[str]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    max_concurrency: int
    hostname: str
    version: str
    circuit_breakers: _containers.RepeatedCompositeFieldContainer[ActivityCircuitBreaker]
    def __init__(self, worker_id: _Optional[str] = ..., worker_group: _Optional[str] = ..., activity_types: _Optional[_Iterable[str]] = ..., workflow_types: _Optional[_Iterable[str]] = ..., max_concurrency: _Optional[int] = ..., hostname: _Optional[str] = ..., version: _Optional[str] = ..., circuit_breakers: _Optional[_Iterable[_Union[ActivityCircuitBreaker, _Mapping]]] = ...) -> None: ...

class ActivityCircuitBreaker(_message.Message):
    __slots__ = ("activity_type", "failure_threshold", "window_seconds", "reset_timeout_seconds", "half_open_max_trials", "success_threshold")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESET_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_MAX_TRIALS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    failure_threshold: int
    window_seconds: float
    reset_timeout_seconds: float
    half_open_max_trials: int
    success_threshold: int
    def __init__(self, activity_type: _Optional[str] = ..., failure_threshold: _Optional[int] = ..., window_seconds: _Optional[float] = ..., reset_timeout_seconds: _Optional[float] = ..., half_open_max_trials: _Optional[int] = ..., success_threshold: _Optional[int] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("max_request_bytes", "max_payload_bytes", "journals")
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    JOURNALS_FIELD_NUMBER: _ClassVar[int]
    max_request_bytes: int
    max_payload_bytes: int
    journals: bool
    def __init__(self, max_request_bytes: _Optional[int] = ..., max_payload_bytes: _Optional[int] = ..., journals: _Optional[bool] = ...) -> None: ...

class WorkerHeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "current_load")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOAD_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    current_load: int
    def __init__(self, worker_id: _Optional[str] = ..., current_load: _Optional[int] = ...) -> None: ...

class WorkerHeartbeatResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    def __init__(self, status: _Optional[str] = ...) -> None: ...

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DrainWorkerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeregisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DeregisterWorkerResponse(_message.Message):
    __slots__ = ("released_tasks",)
    RELEASED_TASKS_FIELD_NUMBER: _ClassVar[int]
    released_tasks: int
    def __init__(self, released_tasks: _Optional[int] = ...) -> None: ...

class ClaimTasksRequest(_message.Message):
    __slots__ = ("worker_id", "activity_types", "workflow_types", "max_tasks", "wait_seconds", "pages_history")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAGES_HISTORY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    activity_types: _containers.RepeatedScalarFieldContainer[str]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    max_tasks: int
    wait_seconds: float
    pages_history: bool
    def __init__(self, worker_id: _Optional[str] = ..., activity_types: _Optional[_Iterable[str]] = ..., workflow_types: _Optional[_Iterable[str]] = ..., max_tasks: _Optional[int] = ..., wait_seconds: _Optional[float] = ..., pages_history: _Optional[bool] = ...) -> None: ...

class ClaimTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("task_id", "attempt", "details_json")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    details_json: str
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., details_json: _Optional[str] = ...) -> None: ...

class HeartbeatTasksRequest(_message.Message):
    __slots__ = ("worker_id", "tasks")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRef]
    def __init__(self, worker_id: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ...) -> None: ...

class TaskHeartbeatResult(_message.Message):
    __slots__ = ("task_id", "accepted", "cancel_requested")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    accepted: bool
    cancel_requested: bool
    def __init__(self, task_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class HeartbeatTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskHeartbeatResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskHeartbeatResult, _Mapping]]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("worker_id", "task_id", "attempt", "result_json")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    attempt: int
    result_json: str
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., result_json: _Optional[str] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskCompletion(_message.Message):
    __slots__ = ("task_id", "attempt", "result_json", "decision", "of_workflow")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    OF_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    result_json: str
    decision: FollowingDecision
    of_workflow: bool
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., result_json: _Optional[str] = ..., decision: _Optional[_Union[FollowingDecision, _Mapping]] = ..., of_workflow: _Optional[bool] = ...) -> None: ...

class FollowingDecision(_message.Message):
    __slots__ = ("after_seq", "event_time_us", "actions", "keeps_instance")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_US_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    KEEPS_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    event_time_us: int
    actions: _containers.RepeatedCompositeFieldContainer[WorkflowAction]
    keeps_instance: bool
    def __init__(self, after_seq: _Optional[int] = ..., event_time_us: _Optional[int] = ..., actions: _Optional[_Iterable[_Union[WorkflowAction, _Mapping]]] = ..., keeps_instance: _Optional[bool] = ...) -> None: ...

class CompleteTasksRequest(_message.Message):
    __slots__ = ("worker_id", "completions")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    completions: _containers.RepeatedCompositeFieldContainer[TaskCompletion]
    def __init__(self, worker_id: _Optional[str] = ..., completions: _Optional[_Iterable[_Union[TaskCompletion, _Mapping]]] = ...) -> None: ...

class CompletionOutcome(_message.Message):
    __slots__ = ("task_id", "accepted", "code", "message", "applied", "tasks", "events", "unseen")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    UNSEEN_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    accepted: bool
    code: str
    message: str
    applied: bool
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    unseen: bool
    def __init__(self, task_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., applied: _Optional[bool] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., unseen: _Optional[bool] = ...) -> None: ...

class CompleteTasksResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[CompletionOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[CompletionOutcome, _Mapping]]] = ...) -> None: ...

class FailTaskRequest(_message.Message):
    __slots__ = ("worker_id", "task_id", "attempt", "failure")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    attempt: int
    failure: Failure
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class FailTaskResponse(_message.Message):
    __slots__ = ("outcome", "retry_at")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    retry_at: float
    def __init__(self, outcome: _Optional[str] = ..., retry_at: _Optional[float] = ...) -> None: ...

class ScheduleActivity(_message.Message):
    __slots__ = ("activity_id", "activity_type", "input_json", "options", "eager")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EAGER_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    activity_type: str
    input_json: str
    options: ActivityOptions
    eager: bool
    def __init__(self, activity_id: _Optional[str] = ..., activity_type: _Optional[str] = ..., input_json: _Optional[str] = ..., options: _Optional[_Union[ActivityOptions, _Mapping]] = ..., eager: _Optional[bool] = ...) -> None: ...

class StartTimer(_message.Message):
    __slots__ = ("timer_id", "fire_after")
    TIMER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRE_AFTER_FIELD_NUMBER: _ClassVar[int]
    timer_id: str
    fire_after: float
    def __init__(self, timer_id: _Optional[str] = ..., fire_after: _Optional[float] = ...) -> None: ...

class CompleteWorkflow(_message.Message):
    __slots__ = ("result_json",)
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    def __init__(self, result_json: _Optional[str] = ...) -> None: ...

class FailWorkflow(_message.Message):
    __slots__ = ("failure",)
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    failure: Failure
    def __init__(self, failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class RecordMarker(_message.Message):
    __slots__ = ("kind", "marker_id", "value_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MARKER_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    marker_id: str
    value_json: str
    def __init__(self, kind: _Optional[str] = ..., marker_id: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class CancelActivity(_message.Message):
    __slots__ = ("activity_id",)
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    def __init__(self, activity_id: _Optional[str] = ...) -> None: ...

class CancelTimer(_message.Message):
    __slots__ = ("timer_id",)
    TIMER_ID_FIELD_NUMBER: _ClassVar[int]
    timer_id: str
    def __init__(self, timer_id: _Optional[str] = ...) -> None: ...

class CancelWorkflowAction(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class StartChildWorkflow(_message.Message):
    __slots__ = ("child_id", "workflow_type", "input_json", "parent_close_policy")
    CHILD_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    PARENT_CLOSE_POLICY_FIELD_NUMBER: _ClassVar[int]
    child_id: str
    workflow_type: str
    input_json: str
    parent_close_policy: str
    def __init__(self, child_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., input_json: _Optional[str] = ..., parent_close_policy: _Optional[str] = ...) -> None: ...

class ContinueAsNewAction(_message.Message):
    __slots__ = ("input_json", "handled_through_seq")
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    HANDLED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    input_json: str
    handled_through_seq: int
    def __init__(self, input_json: _Optional[str] = ..., handled_through_seq: _Optional[int] = ...) -> None: ...

class WorkflowAction(_message.Message):
    __slots__ = ("schedule_activity", "start_timer", "complete_workflow", "fail_workflow", "record_marker", "cancel_activity", "cancel_timer", "cancel_workflow", "start_child_workflow", "continue_as_new")
    SCHEDULE_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    START_TIMER_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    FAIL_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    RECORD_MARKER_FIELD_NUMBER: _ClassVar[int]
    CANCEL_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIMER_FIELD_NUMBER: _ClassVar[int]
    CANCEL_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    START_CHILD_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_AS_NEW_FIELD_NUMBER: _ClassVar[int]
    schedule_activity: ScheduleActivity
    start_timer: StartTimer
    complete_workflow: CompleteWorkflow
    fail_workflow: FailWorkflow
    record_marker: RecordMarker
    cancel_activity: CancelActivity
    cancel_timer: CancelTimer
    cancel_workflow: CancelWorkflowAction
    start_child_workflow: StartChildWorkflow
    continue_as_new: ContinueAsNewAction
    def __init__(self, schedule_activity: _Optional[_Union[ScheduleActivity, _Mapping]] = ..., start_timer: _Optional[_Union[StartTimer, _Mapping]] = ..., complete_workflow: _Optional[_Union[CompleteWorkflow, _Mapping]] = ..., fail_workflow: _Optional[_Union[FailWorkflow, _Mapping]] = ..., record_marker: _Optional[_Union[RecordMarker, _Mapping]] = ..., cancel_activity: _Optional[_Union[CancelActivity, _Mapping]] = ..., cancel_timer: _Optional[_Union[CancelTimer, _Mapping]] = ..., cancel_workflow: _Optional[_Union[CancelWorkflowAction, _Mapping]] = ..., start_child_workflow: _Optional[_Union[StartChildWorkflow, _Mapping]] = ..., continue_as_new: _Optional[_Union[ContinueAsNewAction, _Mapping]] = ...) -> None: ...

class CompleteWorkflowTaskRequest(_message.Message):
    __slots__ = ("worker_id", "task_id", "attempt", "seen_through_seq", "actions", "keeps_instance", "journal", "journalled")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEEN_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    KEEPS_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    JOURNALLED_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    attempt: int
    seen_through_seq: int
    actions: _containers.RepeatedCompositeFieldContainer[WorkflowAction]
    keeps_instance: bool
    journal: bool
    journalled: int
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seen_through_seq: _Optional[int] = ..., actions: _Optional[_Iterable[_Union[WorkflowAction, _Mapping]]] = ..., keeps_instance: _Optional[bool] = ..., journal: _Optional[bool] = ..., journalled: _Optional[int] = ...) -> None: ...

class CompleteWorkflowTaskResponse(_message.Message):
    __slots__ = ("applied", "tasks", "events", "unseen")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    UNSEEN_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    unseen: bool
    def __init__(self, applied: _Optional[bool] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., unseen: _Optional[bool] = ...) -> None: ...

class CompleteWorkflowTasksRequest(_message.Message):
    __slots__ = ("worker_id", "decisions")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    decisions: _containers.RepeatedCompositeFieldContainer[CompleteWorkflowTaskRequest]
    def __init__(self, worker_id: _Optional[str] = ..., decisions: _Optional[_Iterable[_Union[CompleteWorkflowTaskRequest, _Mapping]]] = ...) -> None: ...

class CompleteWorkflowTasksResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[CompletionOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[CompletionOutcome, _Mapping]]] = ...) -> None: ...

class GetTaskHistoryRequest(_message.Message):
    __slots__ = ("worker_id", "task_id", "attempt", "after_seq", "page_size")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    attempt: int
    after_seq: int
    page_size: int
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., after_seq: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ReleaseTasksRequest(_message.Message):
    __slots__ = ("worker_id", "tasks")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRef]
    def __init__(self, worker_id: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ...) -> None: ...

class ReleaseTasksResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: int
    def __init__(self, released: _Optional[int] = ...) -> None: ...

class BulkWorkflowFilter(_message.Message):
    __slots__ = ("workflow_type", "status", "created_after", "created_before", "error_contains", "id_prefix")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    status: str
    created_after: float
    created_before: float
    error_contains: str
    id_prefix: str
    def __init__(self, workflow_type: _Optional[str] = ..., status: _Optional[str] = ..., created_after: _Optional[float] = ..., created_before: _Optional[float] = ..., error_contains: _Optional[str] = ..., id_prefix: _Optional[str] = ...) -> None: ...

class BulkWorkflowsRequest(_message.Message):
    __slots__ = ("filter", "dry_run", "batch_size", "page_token", "reason", "terminate")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_FIELD_NUMBER: _ClassVar[int]
    filter: BulkWorkflowFilter
    dry_run: bool
    batch_size: int
    page_token: str
    reason: str
    terminate: bool
    def __init__(self, filter: _Optional[_Union[BulkWorkflowFilter, _Mapping]] = ..., dry_run: _Optional[bool] = ..., batch_size: _Optional[int] = ..., page_token: _Optional[str] = ..., reason: _Optional[str] = ..., terminate: _Optional[bool] = ...) -> None: ...

class BulkDeadLetterFilter(_message.Message):
    __slots__ = ("activity_type", "dead_after", "dead_before", "error_contains", "workflow_id")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEAD_AFTER_FIELD_NUMBER: _ClassVar[int]
    DEAD_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    dead_after: float
    dead_before: float
    error_contains: str
    workflow_id: str
    def __init__(self, activity_type: _Optional[str] = ..., dead_after: _Optional[float] = ..., dead_before: _Optional[float] = ..., error_contains: _Optional[str] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class BulkDeadLettersRequest(_message.Message):
    __slots__ = ("filter", "dry_run", "batch_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: BulkDeadLetterFilter
    dry_run: bool
    batch_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[BulkDeadLetterFilter, _Mapping]] = ..., dry_run: _Optional[bool] = ..., batch_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class BulkResponse(_message.Message):
    __slots__ = ("matched", "affected", "skipped", "errors", "next_page_token")
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    matched: int
    affected: int
    skipped: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, matched: _Optional[int] = ..., affected: _Optional[int] = ..., skipped: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StartWorkflowRequest(_message.Message):
    __slots__ = ("workflow_type", "workflow_id", "input_json", "concurrency_key", "concurrency_limit")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    workflow_id: str
    input_json: str
    concurrency_key: str
    concurrency_limit: int
    def __init__(self, workflow_type: _Optional[str] = ..., workflow_id: _Optional[str] = ..., input_json: _Optional[str] = ..., concurrency_key: _Optional[str] = ..., concurrency_limit: _Optional[int] = ...) -> None: ...

class StartWorkflowResponse(_message.Message):
    __slots__ = ("workflow_id", "created")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    created: bool
    def __init__(self, workflow_id: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class SignalWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "signal_type", "payload_json")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    signal_type: str
    payload_json: str
    def __init__(self, workflow_id: _Optional[str] = ..., signal_type: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class SignalWorkflowResponse(_message.Message):
    __slots__ = ("sequence_num",)
    SEQUENCE_NUM_FIELD_NUMBER: _ClassVar[int]
    sequence_num: int
    def __init__(self, sequence_num: _Optional[int] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason", "terminate")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    terminate: bool
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ..., terminate: _Optional[bool] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("cancelled_tasks",)
    CANCELLED_TASKS_FIELD_NUMBER: _ClassVar[int]
    cancelled_tasks: int
    def __init__(self, cancelled_tasks: _Optional[int] = ...) -> None: ...

class WorkflowInfo(_message.Message):
    __slots__ = ("id", "workflow_type", "status", "input_json", "result_json", "error_json", "created_at", "updated_at", "started_at", "completed_at", "last_event_seq", "blocked_json", "cancel_requested_at", "decided_through_seq", "parent_workflow_id", "parent_close_policy", "run_number", "history_bytes", "replay_through_seq", "pinned")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_JSON_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    PARENT_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CLOSE_POLICY_FIELD_NUMBER: _ClassVar[int]
    RUN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    HISTORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLAY_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow_type: str
    status: str
    input_json: str
    result_json: str
    error_json: str
    created_at: float
    updated_at: float
    started_at: float
    completed_at: float
    last_event_seq: int
    blocked_json: str
    cancel_requested_at: float
    decided_through_seq: int
    parent_workflow_id: str
    parent_close_policy: str
    run_number: int
    history_bytes: int
    replay_through_seq: int
    pinned: bool
    def __init__(self, id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., status: _Optional[str] = ..., input_json: _Optional[str] = ..., result_json: _Optional[str] = ..., error_json: _Optional[str] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., started_at: _Optional[float] = ..., completed_at: _Optional[float] = ..., last_event_seq: _Optional[int] = ..., blocked_json: _Optional[str] = ..., cancel_requested_at: _Optional[float] = ..., decided_through_seq: _Optional[int] = ..., parent_workflow_id: _Optional[str] = ..., parent_close_policy: _Optional[str] = ..., run_number: _Optional[int] = ..., history_bytes: _Optional[int] = ..., replay_through_seq: _Optional[int] = ..., pinned: _Optional[bool] = ...) -> None: ...

class WorkflowRunInfo(_message.Message):
    __slots__ = ("run_number", "status", "input_json", "next_input_json", "events", "started_at", "closed_at")
    RUN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    NEXT_INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    run_number: int
    status: str
    input_json: str
    next_input_json: str
    events: int
    started_at: float
    closed_at: float
    def __init__(self, run_number: _Optional[int] = ..., status: _Optional[str] = ..., input_json: _Optional[str] = ..., next_input_json: _Optional[str] = ..., events: _Optional[int] = ..., started_at: _Optional[float] = ..., closed_at: _Optional[float] = ...) -> None: ...

class DescribeWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class DescribeWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "children", "runs", "unserved_types")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    UNSERVED_TYPES_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowInfo
    children: _containers.RepeatedCompositeFieldContainer[WorkflowInfo]
    runs: _containers.RepeatedCompositeFieldContainer[WorkflowRunInfo]
    unserved_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workflow: _Optional[_Union[WorkflowInfo, _Mapping]] = ..., children: _Optional[_Iterable[_Union[WorkflowInfo, _Mapping]]] = ..., runs: _Optional[_Iterable[_Union[WorkflowRunInfo, _Mapping]]] = ..., unserved_types: _Optional[_Iterable[str]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("status", "workflow_type", "limit", "id_prefix", "created_after", "created_before", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: str
    workflow_type: str
    limit: int
    id_prefix: str
    created_after: float
    created_before: float
    page_token: str
    def __init__(self, status: _Optional[str] = ..., workflow_type: _Optional[str] = ..., limit: _Optional[int] = ..., id_prefix: _Optional[str] = ..., created_after: _Optional[float] = ..., created_before: _Optional[float] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows", "next_page_token")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowInfo]
    next_page_token: str
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountWorkflowsRequest(_message.Message):
    __slots__ = ("workflow_type", "id_prefix", "created_after", "created_before", "at_most")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    AT_MOST_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    id_prefix: str
    created_after: float
    created_before: float
    at_most: int
    def __init__(self, workflow_type: _Optional[str] = ..., id_prefix: _Optional[str] = ..., created_after: _Optional[float] = ..., created_before: _Optional[float] = ..., at_most: _Optional[int] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count", "at_least")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    status: str
    count: int
    at_least: bool
    def __init__(self, status: _Optional[str] = ..., count: _Optional[int] = ..., at_least: _Optional[bool] = ...) -> None: ...

class CountWorkflowsResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[StatusCount]
    def __init__(self, counts: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ...) -> None: ...

class ListWorkflowTasksRequest(_message.Message):
    __slots__ = ("workflow_id", "include_finished", "limit")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FINISHED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    include_finished: bool
    limit: int
    def __init__(self, workflow_id: _Optional[str] = ..., include_finished: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("id", "kind", "activity_id", "activity_type", "status", "attempt", "max_attempts", "priority", "visible_at", "created_at", "claimed_by", "claimed_at", "heartbeat_at", "completed_at", "last_error", "error_history_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_BY_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_HISTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    activity_id: str
    activity_type: str
    status: str
    attempt: int
    max_attempts: int
    priority: int
    visible_at: float
    created_at: float
    claimed_by: str
    claimed_at: float
    heartbeat_at: float
    completed_at: float
    last_error: str
    error_history_json: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., activity_id: _Optional[str] = ..., activity_type: _Optional[str] = ..., status: _Optional[str] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., priority: _Optional[int] = ..., visible_at: _Optional[float] = ..., created_at: _Optional[float] = ..., claimed_by: _Optional[str] = ..., claimed_at: _Optional[float] = ..., heartbeat_at: _Optional[float] = ..., completed_at: _Optional[float] = ..., last_error: _Optional[str] = ..., error_history_json: _Optional[str] = ...) -> None: ...

class ListWorkflowTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ...) -> None: ...

class ListCircuitBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CircuitBreakerInfo(_message.Message):
    __slots__ = ("key", "state", "failure_count", "success_count", "half_open_in_flight", "opened_at", "failure_threshold", "window_seconds", "reset_timeout_seconds", "half_open_max_trials", "success_threshold", "updated_at")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESET_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_MAX_TRIALS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    key: str
    state: str
    failure_count: int
    success_count: int
    half_open_in_flight: int
    opened_at: float
    failure_threshold: int
    window_seconds: float
    reset_timeout_seconds: float
    half_open_max_trials: int
    success_threshold: int
    updated_at: float
    def __init__(self, key: _Optional[str] = ..., state: _Optional[str] = ..., failure_count: _Optional[int] = ..., success_count: _Optional[int] = ..., half_open_in_flight: _Optional[int] = ..., opened_at: _Optional[float] = ..., failure_threshold: _Optional[int] = ..., window_seconds: _Optional[float] = ..., reset_timeout_seconds: _Optional[float] = ..., half_open_max_trials: _Optional[int] = ..., success_threshold: _Optional[int] = ..., updated_at: _Optional[float] = ...) -> None: ...

class ListCircuitBreakersResponse(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[CircuitBreakerInfo]
    def __init__(self, breakers: _Optional[_Iterable[_Union[CircuitBreakerInfo, _Mapping]]] = ...) -> None: ...

class SetRateLimitRequest(_message.Message):
    __slots__ = ("activity_type", "rate", "burst")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    rate: float
    burst: float
    def __init__(self, activity_type: _Optional[str] = ..., rate: _Optional[float] = ..., burst: _Optional[float] = ...) -> None: ...

class RateLimitInfo(_message.Message):
    __slots__ = ("activity_type", "rate", "burst", "tokens", "pending", "running")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    rate: float
    burst: float
    tokens: float
    pending: int
    running: int
    def __init__(self, activity_type: _Optional[str] = ..., rate: _Optional[float] = ..., burst: _Optional[float] = ..., tokens: _Optional[float] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ...) -> None: ...

class DeleteRateLimitRequest(_message.Message):
    __slots__ = ("activity_type",)
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    def __init__(self, activity_type: _Optional[str] = ...) -> None: ...

class DeleteRateLimitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRateLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConcurrencyKeyInfo(_message.Message):
    __slots__ = ("key", "running", "limit")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    key: str
    running: int
    limit: int
    def __init__(self, key: _Optional[str] = ..., running: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRateLimitsResponse(_message.Message):
    __slots__ = ("rate_limits", "busiest_keys")
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    BUSIEST_KEYS_FIELD_NUMBER: _ClassVar[int]
    rate_limits: _containers.RepeatedCompositeFieldContainer[RateLimitInfo]
    busiest_keys: _containers.RepeatedCompositeFieldContainer[ConcurrencyKeyInfo]
    def __init__(self, rate_limits: _Optional[_Iterable[_Union[RateLimitInfo, _Mapping]]] = ..., busiest_keys: _Optional[_Iterable[_Union[ConcurrencyKeyInfo, _Mapping]]] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("workflow_id", "after_seq", "page_size")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    after_seq: int
    page_size: int
    def __init__(self, workflow_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("events", "has_more", "next_after_seq")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    has_more: bool
    next_after_seq: int
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., has_more: _Optional[bool] = ..., next_after_seq: _Optional[int] = ...) -> None: ...

class WaitWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "wait_seconds")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    wait_seconds: float
    def __init__(self, workflow_id: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class EnqueueActivityRequest(_message.Message):
    __slots__ = ("activity_type", "input_json", "options", "idempotency_key")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    input_json: str
    options: ActivityOptions
    idempotency_key: str
    def __init__(self, activity_type: _Optional[str] = ..., input_json: _Optional[str] = ..., options: _Optional[_Union[ActivityOptions, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class EnqueueActivityResponse(_message.Message):
    __slots__ = ("task_id", "duplicate")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    duplicate: bool
    def __init__(self, task_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class EnqueueActivitiesRequest(_message.Message):
    __slots__ = ("activities",)
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    activities: _containers.RepeatedCompositeFieldContainer[EnqueueActivityRequest]
    def __init__(self, activities: _Optional[_Iterable[_Union[EnqueueActivityRequest, _Mapping]]] = ...) -> None: ...

class EnqueueOutcome(_message.Message):
    __slots__ = ("task_id", "duplicate", "code", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    duplicate: bool
    code: str
    message: str
    def __init__(self, task_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EnqueueActivitiesResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[EnqueueOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[EnqueueOutcome, _Mapping]]] = ...) -> None: ...

class StartWorkflowsRequest(_message.Message):
    __slots__ = ("starts",)
    STARTS_FIELD_NUMBER: _ClassVar[int]
    starts: _containers.RepeatedCompositeFieldContainer[StartWorkflowRequest]
    def __init__(self, starts: _Optional[_Iterable[_Union[StartWorkflowRequest, _Mapping]]] = ...) -> None: ...

class StartOutcome(_message.Message):
    __slots__ = ("workflow_id", "created", "code", "message")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    created: bool
    code: str
    message: str
    def __init__(self, workflow_id: _Optional[str] = ..., created: _Optional[bool] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StartWorkflowsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[StartOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[StartOutcome, _Mapping]]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("id", "original_task_id", "workflow_id", "activity_id", "activity_type", "input_json", "attempts", "last_error", "error_history_json", "reason", "dead_at", "requeued_at", "requeue_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_HISTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    original_task_id: str
    workflow_id: str
    activity_id: str
    activity_type: str
    input_json: str
    attempts: int
    last_error: str
    error_history_json: str
    reason: str
    dead_at: float
    requeued_at: float
    requeue_count: int
    def __init__(self, id: _Optional[str] = ..., original_task_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., activity_id: _Optional[str] = ..., activity_type: _Optional[str] = ..., input_json: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., error_history_json: _Optional[str] = ..., reason: _Optional[str] = ..., dead_at: _Optional[float] = ..., requeued_at: _Optional[float] = ..., requeue_count: _Optional[int] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("activity_type", "limit", "error_contains", "page_token")
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    activity_type: str
    limit: int
    error_contains: str
    page_token: str
    def __init__(self, activity_type: _Optional[str] = ..., limit: _Optional[int] = ..., error_contains: _Optional[str] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RequeueDeadLetterRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RequeueDeadLetterResponse(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetQueueStatsRequest(_message.Message):
    __slots__ = ("activity_types", "workflow_types")
    ACTIVITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    activity_types: _containers.RepeatedScalarFieldContainer[str]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, activity_types: _Optional[_Iterable[str]] = ..., workflow_types: _Optional[_Iterable[str]] = ...) -> None: ...

class TypeStats(_message.Message):
    __slots__ = ("kind", "type", "pending", "delayed", "claimed", "oldest_pending_age", "unserved")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    DELAYED_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AGE_FIELD_NUMBER: _ClassVar[int]
    UNSERVED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    type: str
    pending: int
    delayed: int
    claimed: int
    oldest_pending_age: float
    unserved: bool
    def __init__(self, kind: _Optional[str] = ..., type: _Optional[str] = ..., pending: _Optional[int] = ..., delayed: _Optional[int] = ..., claimed: _Optional[int] = ..., oldest_pending_age: _Optional[float] = ..., unserved: _Optional[bool] = ...) -> None: ...

class GetQueueStatsResponse(_message.Message):
    __slots__ = ("types", "as_of")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedCompositeFieldContainer[TypeStats]
    as_of: float
    def __init__(self, types: _Optional[_Iterable[_Union[TypeStats, _Mapping]]] = ..., as_of: _Optional[float] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("worker_group", "include_stopped")
    WORKER_GROUP_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STOPPED_FIELD_NUMBER: _ClassVar[int]
    worker_group: str
    include_stopped: bool
    def __init__(self, worker_group: _Optional[str] = ..., include_stopped: _Optional[bool] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("id", "worker_group", "activity_types", "workflow_types", "max_concurrency", "current_load", "status", "last_heartbeat_at", "started_at", "hostname", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_GROUP_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    worker_group: str
    activity_types: _containers.RepeatedScalarFieldContainer[str]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    max_concurrency: int
    current_load: int
    status: str
    last_heartbeat_at: float
    started_at: float
    hostname: str
    version: str
    def __init__(self, id: _Optional[str] = ..., worker_group: _Optional[str] = ..., activity_types: _Optional[_Iterable[str]] = ..., workflow_types: _Optional[_Iterable[str]] = ..., max_concurrency: _Optional[int] = ..., current_load: _Optional[int] = ..., status: _Optional[str] = ..., last_heartbeat_at: _Optional[float] = ..., started_at: _Optional[float] = ..., hostname: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class PinWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "pinned")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    pinned: bool
    def __init__(self, workflow_id: _Optional[str] = ..., pinned: _Optional[bool] = ...) -> None: ...

class PinWorkflowResponse(_message.Message):
    __slots__ = ("pinned",)
    PINNED_FIELD_NUMBER: _ClassVar[int]
    pinned: bool
    def __init__(self, pinned: _Optional[bool] = ...) -> None: ...

class DeleteDeadLetterRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteDeadLetterResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "name", "arg_json", "timeout")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARG_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    name: str
    arg_json: str
    timeout: float
    def __init__(self, workflow_id: _Optional[str] = ..., name: _Optional[str] = ..., arg_json: _Optional[str] = ..., timeout: _Optional[float] = ...) -> None: ...

class QueryWorkflowResponse(_message.Message):
    __slots__ = ("result_json",)
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    def __init__(self, result_json: _Optional[str] = ...) -> None: ...

class AnswerQueryRequest(_message.Message):
    __slots__ = ("worker_id", "query_id", "result_json", "failure")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    query_id: str
    result_json: str
    failure: Failure
    def __init__(self, worker_id: _Optional[str] = ..., query_id: _Optional[str] = ..., result_json: _Optional[str] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class AnswerQueryResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "workflow_type", "activity_type", "input_json", "cron", "interval_seconds", "time_zone", "overlap_policy", "catchup_window_seconds", "jitter_seconds", "start_at", "end_at", "paused", "note", "next_tick", "next_fire_at", "buffered_tick", "last_run_id", "last_tick", "started_count", "skipped_count", "missed_count", "existing_count", "recent_fires_json", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_POLICY_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JITTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    END_AT_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    NEXT_TICK_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_AT_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_TICK_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_FIELD_NUMBER: _ClassVar[int]
    STARTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXISTING_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIRES_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow_type: str
    activity_type: str
    input_json: str
    cron: str
    interval_seconds: float
    time_zone: str
    overlap_policy: str
    catchup_window_seconds: float
    jitter_seconds: float
    start_at: float
    end_at: float
    paused: bool
    note: str
    next_tick: float
    next_fire_at: float
    buffered_tick: float
    last_run_id: str
    last_tick: float
    started_count: int
    skipped_count: int
    missed_count: int
    existing_count: int
    recent_fires_json: str
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., activity_type: _Optional[str] = ..., input_json: _Optional[str] = ..., cron: _Optional[str] = ..., interval_seconds: _Optional[float] = ..., time_zone: _Optional[str] = ..., overlap_policy: _Optional[str] = ..., catchup_window_seconds: _Optional[float] = ..., jitter_seconds: _Optional[float] = ..., start_at: _Optional[float] = ..., end_at: _Optional[float] = ..., paused: _Optional[bool] = ..., note: _Optional[str] = ..., next_tick: _Optional[float] = ..., next_fire_at: _Optional[float] = ..., buffered_tick: _Optional[float] = ..., last_run_id: _Optional[str] = ..., last_tick: _Optional[float] = ..., started_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., missed_count: _Optional[int] = ..., existing_count: _Optional[int] = ..., recent_fires_json: _Optional[str] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("id_prefix", "limit", "page_token")
    ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id_prefix: str
    limit: int
    page_token: str
    def __init__(self, id_prefix: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "next_page_token")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    next_page_token: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DescribeScheduleRequest(_message.Message):
    __slots__ = ("id", "upcoming")
    ID_FIELD_NUMBER: _ClassVar[int]
    UPCOMING_FIELD_NUMBER: _ClassVar[int]
    id: str
    upcoming: int
    def __init__(self, id: _Optional[str] = ..., upcoming: _Optional[int] = ...) -> None: ...

class DescribeScheduleResponse(_message.Message):
    __slots__ = ("schedule", "upcoming_ticks")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    UPCOMING_TICKS_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    upcoming_ticks: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., upcoming_ticks: _Optional[_Iterable[float]] = ...) -> None: ...

class PauseScheduleRequest(_message.Message):
    __slots__ = ("id", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    note: str
    def __init__(self, id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ResumeScheduleRequest(_message.Message):
    __slots__ = ("id", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    note: str
    def __init__(self, id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class TriggerScheduleRequest(_message.Message):
    __slots__ = ("id", "overlap_policy")
    ID_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_POLICY_FIELD_NUMBER: _ClassVar[int]
    id: str
    overlap_policy: str
    def __init__(self, id: _Optional[str] = ..., overlap_policy: _Optional[str] = ...) -> None: ...

class TriggerScheduleResponse(_message.Message):
    __slots__ = ("outcome", "run_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    run_id: str
    def __init__(self, outcome: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class BackfillScheduleRequest(_message.Message):
    __slots__ = ("id", "start_time", "end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    start_time: float
    end_time: float
    def __init__(self, id: _Optional[str] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ...) -> None: ...

class BackfillScheduleResponse(_message.Message):
    __slots__ = ("started", "existing")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    started: int
    existing: int
    def __init__(self, started: _Optional[int] = ..., existing: _Optional[int] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetThroughputRequest(_message.Message):
    __slots__ = ("activity_types", "workflow_types", "since", "bucket_seconds")
    ACTIVITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    activity_types: _containers.RepeatedScalarFieldContainer[str]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    since: float
    bucket_seconds: float
    def __init__(self, activity_types: _Optional[_Iterable[str]] = ..., workflow_types: _Optional[_Iterable[str]] = ..., since: _Optional[float] = ..., bucket_seconds: _Optional[float] = ...) -> None: ...

class TypeThroughput(_message.Message):
    __slots__ = ("kind", "type", "completed")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    type: str
    completed: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, kind: _Optional[str] = ..., type: _Optional[str] = ..., completed: _Optional[_Iterable[int]] = ...) -> None: ...

class GetThroughputResponse(_message.Message):
    __slots__ = ("types", "since", "bucket_seconds", "as_of")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedCompositeFieldContainer[TypeThroughput]
    since: float
    bucket_seconds: float
    as_of: float
    def __init__(self, types: _Optional[_Iterable[_Union[TypeThroughput, _Mapping]]] = ..., since: _Optional[float] = ..., bucket_seconds: _Optional[float] = ..., as_of: _Optional[float] = ...) -> None: ...
