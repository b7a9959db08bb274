"""Evaluate ROS 2 Python launch files without `launch`/`launch_ros` (not installable here): a faithful stand-in.

Method: EXEC, not ast. Each launch/*.launch.py is executed for real (`generate_launch_description()` is called) with
stand-in modules `launch`, `launch.actions`, `launch.substitutions`, `launch.conditions`, `launch.events`,
`launch.event_handlers`, `launch.launch_description_sources`, `launch_ros.actions`, `launch_ros.substitutions`,
`launch_ros.events.lifecycle`, `launch_ros.event_handlers` and `launch_ros.parameter_descriptions` placed in
`sys.modules` for the duration of the call. The stand-ins keep the constructors' real keyword-only signatures (an
unknown keyword is a TypeError, as with the real classes) and record what the file builds. The recorded description
is then *run* the way `ros2 launch` runs it, minus the processes: launch arguments resolved (defaults + overrides),
substitutions performed, conditions evaluated, OpaqueFunctions called with a context, includes followed, and the
lifecycle events simulated (a ChangeState event moves the matched LifecycleNode to the transition's goal state and
fires the OnStateTransition handlers registered for it), so a test can assert that every lifecycle node ends up
active and which nodes start for given arguments. `lifecycle_msgs` is the real package (it is in the venv).

What a launch file uses beyond this subset fails loudly (ImportError/AttributeError naming it): extend the stand-in
faithfully, never loosen it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ros_params import flatten

PACKAGE_SHARE: dict[str, Path] = {}  # package name -> its share folder (the source tree in CI)

# ExecuteProcess keyword arguments (launch/actions/execute_process.py and execute_local.py, Humble..Kilted).
_EXECUTE_PROCESS_KW = {"name", "cwd", "env", "additional_env", "shell", "sigterm_timeout", "sigkill_timeout",
                       "emulate_tty", "prefix", "output", "output_format", "log_cmd", "cached_output", "on_exit",
                       "respawn", "respawn_delay", "respawn_max_retries", "condition"}


class LaunchError(RuntimeError):
    """What `ros2 launch` would refuse (unknown argument, missing file, bad substitution...)."""


# ----------------------------------------------------------------------------------------------- substitutions
class Substitution:
    def perform(self, ctx: "Context") -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def perform(ctx: "Context", value: Any) -> Any:
    """Expand SomeSubstitutionsType (str | Substitution | iterable of them) to a str, as launch does."""
    if isinstance(value, str):
        return value
    if isinstance(value, Substitution):
        return value.perform(ctx)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return "".join(perform(ctx, v) for v in value)
    raise LaunchError(f"cannot substitute {value!r}")


class TextSubstitution(Substitution):
    def __init__(self, *, text: str = "") -> None:
        self.text = text

    def perform(self, ctx):
        return self.text


class LaunchConfiguration(Substitution):
    def __init__(self, variable_name, *, default=None) -> None:
        self.variable_name = variable_name
        self.default = default

    def perform(self, ctx):
        name = perform(ctx, self.variable_name)
        if name in ctx.launch_configurations:
            return ctx.launch_configurations[name]
        if self.default is not None:
            return perform(ctx, self.default)
        raise LaunchError(f"launch configuration '{name}' does not exist")


class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions) -> None:
        self.substitutions = substitutions

    def perform(self, ctx):
        return os.path.join(*[perform(ctx, s) for s in self.substitutions])


class PythonExpression(Substitution):
    def __init__(self, expression) -> None:
        self.expression = expression

    def perform(self, ctx):
        return str(eval(perform(ctx, self.expression), {"__builtins__": {}}, {}))


class EnvironmentVariable(Substitution):
    def __init__(self, name, *, default_value="") -> None:
        self.name, self.default_value = name, default_value

    def perform(self, ctx):
        return os.environ.get(perform(ctx, self.name), perform(ctx, self.default_value))


class ThisLaunchFileDir(Substitution):
    def perform(self, ctx):
        return str(Path(ctx.current_file).parent)


class FindPackageShare(Substitution):
    def __init__(self, package) -> None:
        self.package = package

    def perform(self, ctx):
        pkg = perform(ctx, self.package)
        if pkg not in PACKAGE_SHARE:
            raise LaunchError(f"package '{pkg}' not found (known: {sorted(PACKAGE_SHARE)})")
        return str(PACKAGE_SHARE[pkg])


# --------------------------------------------------------------------------------------------------- conditions
class Condition:
    def evaluate(self, ctx) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


def _truth(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    raise LaunchError(f"condition expects true/false/1/0, got {text!r}")


class IfCondition(Condition):
    def __init__(self, predicate_expression) -> None:
        self.expr = predicate_expression

    def evaluate(self, ctx):
        return _truth(perform(ctx, self.expr))


class UnlessCondition(IfCondition):
    def evaluate(self, ctx):
        return not _truth(perform(ctx, self.expr))


class LaunchConfigurationEquals(Condition):
    def __init__(self, launch_configuration_name, expected_value) -> None:
        self.name, self.expected = launch_configuration_name, expected_value

    def evaluate(self, ctx):
        return ctx.launch_configurations.get(self.name) == perform(ctx, self.expected)


# ------------------------------------------------------------------------------------------------------ actions
class Action:
    def __init__(self, *, condition: Condition | None = None) -> None:
        self.condition = condition


class LaunchDescription:
    def __init__(self, initial_entities: Iterable | None = None, *, deprecated_reason=None) -> None:
        self.entities = list(initial_entities or [])

    def add_action(self, action) -> None:
        self.entities.append(action)


class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value=None, description: str = "", choices=None, **kw) -> None:
        super().__init__(**kw)
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class SetLaunchConfiguration(Action):
    def __init__(self, name, value, **kw) -> None:
        super().__init__(**kw)
        self.name, self.value = name, value


class GroupAction(Action):
    def __init__(self, actions, *, scoped: bool = True, forwarding: bool = True, launch_configurations=None,
                 **kw) -> None:
        super().__init__(**kw)
        self.actions, self.scoped, self.launch_configurations = list(actions), scoped, launch_configurations or {}


class OpaqueFunction(Action):
    def __init__(self, *, function: Callable, args=None, kwargs=None, **kw) -> None:
        super().__init__(**kw)
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}


class LogInfo(Action):
    def __init__(self, *, msg, **kw) -> None:
        super().__init__(**kw)
        self.msg = msg


class TimerAction(Action):
    def __init__(self, *, period, actions, cancel_on_shutdown=True, **kw) -> None:
        super().__init__(**kw)
        self.period, self.actions = period, list(actions)


class ExecuteProcess(Action):
    def __init__(self, *, cmd, **kw) -> None:
        unknown = set(kw) - _EXECUTE_PROCESS_KW
        if unknown:
            raise TypeError(f"ExecuteProcess got unexpected keyword argument(s) {sorted(unknown)}")
        super().__init__(condition=kw.pop("condition", None))
        self.cmd, self.kw = cmd, kw


class EmitEvent(Action):
    def __init__(self, *, event, **kw) -> None:
        super().__init__(**kw)
        self.event = event


class RegisterEventHandler(Action):
    def __init__(self, event_handler, **kw) -> None:
        super().__init__(**kw)
        self.event_handler = event_handler


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path) -> None:
        self.location = launch_file_path


class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source, *, launch_arguments=None, **kw) -> None:
        super().__init__(**kw)
        if isinstance(launch_description_source, (str, Substitution, list, tuple)):
            launch_description_source = PythonLaunchDescriptionSource(launch_description_source)
        self.source = launch_description_source
        self.launch_arguments = list(launch_arguments or [])


class Node(ExecuteProcess):
    """launch_ros.actions.Node (Humble..Kilted keyword names)."""

    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None, parameters=None,
                 remappings=None, ros_arguments=None, arguments=None, **kw) -> None:
        super().__init__(cmd=[], **kw)
        if parameters is not None and not isinstance(parameters, list):
            raise TypeError("Node(parameters=...) must be a list (launch_ros ensure_argument_type)")
        self.package, self.executable, self.name, self.namespace = package, executable, name, namespace
        self.parameters = parameters or []
        self.remappings = list(remappings or [])
        self.ros_arguments, self.arguments = ros_arguments, arguments


class LifecycleNode(Node):
    """launch_ros.actions.LifecycleNode: `name` AND `namespace` are required (Humble requires both)."""

    def __init__(self, *, name, namespace, **kw) -> None:
        super().__init__(name=name, namespace=namespace, **kw)


class ParameterFile:
    def __init__(self, param_file, *, allow_substs: bool = False) -> None:
        self.param_file, self.allow_substs = param_file, allow_substs


# ------------------------------------------------------------------------------------------ events and handlers
def matches_action(target_action) -> Callable:
    return lambda action: action is target_action


class ChangeState:
    """launch_ros.events.lifecycle.ChangeState."""

    def __init__(self, *, lifecycle_node_matcher: Callable, transition_id: int) -> None:
        self.lifecycle_node_matcher, self.transition_id = lifecycle_node_matcher, transition_id


class OnStateTransition:
    """launch_ros.event_handlers.OnStateTransition."""

    def __init__(self, *, target_lifecycle_node=None, transition=None, start_state=None, goal_state=None,
                 entities=None, handle_once=False, matcher=None) -> None:
        self.target, self.transition, self.start_state, self.goal_state = (target_lifecycle_node, transition,
                                                                          start_state, goal_state)
        self.entities = entities if isinstance(entities, list) else [entities] if entities else []


class OnProcessStart:
    """launch.event_handlers.OnProcessStart."""

    def __init__(self, *, target_action=None, on_start, handle_once=False) -> None:
        self.target = target_action
        self.entities = on_start if isinstance(on_start, list) else [on_start]


class Shutdown(Action):
    def __init__(self, *, reason="", **kw) -> None:
        super().__init__(**kw)


# ------------------------------------------------------------------------------------------------- evaluation
@dataclass
class StartedNode:
    """One node `ros2 launch` would start, with everything substituted."""

    package: str
    executable: str
    name: str | None
    namespace: str
    parameters: list[Any]  # Path (a YAML file) or dict (inline), in order
    lifecycle: bool
    remappings: list[tuple[str, str]]
    action: Node = field(repr=False)
    state: str = "unconfigured"  # lifecycle state after the simulated events


@dataclass
class LaunchResult:
    arguments: dict[str, DeclareLaunchArgument]
    nodes: list[StartedNode]
    processes: list[list[str]]
    files: list[Path]  # every launch file evaluated (includes followed)


class Context:
    def __init__(self, launch_configurations: dict[str, str], current_file: Path) -> None:
        self.launch_configurations = launch_configurations
        self.current_file = current_file

    def perform_substitution(self, sub) -> str:  # launch.LaunchContext API used by OpaqueFunctions
        return perform(self, sub)


# lifecycle_msgs/msg/Transition ids -> goal state names (the primary states the transition ends in)
_GOAL = {1: "inactive", 2: "unconfigured", 3: "active", 4: "inactive", 5: "finalized", 6: "finalized",
         7: "finalized"}


def _eval_param_value(ctx, v):
    if isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return {perform(ctx, k): _eval_param_value(ctx, x) for k, x in v.items()}
    if isinstance(v, list) and v and all(isinstance(x, (bool, int, float, str)) for x in v):
        return list(v)
    return _yaml_scalar(perform(ctx, v))  # substitutions: launch_ros yaml-parses the expanded text


def _yaml_scalar(text: str):
    import yaml

    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


class _Runner:
    def __init__(self) -> None:
        self.nodes: list[StartedNode] = []
        self.processes: list[list[str]] = []
        self.handlers: list[tuple[Any, Context]] = []
        self.arguments: dict[str, DeclareLaunchArgument] = {}
        self.files: list[Path] = []
        self.events: list[tuple[Any, Context]] = []  # emitted, processed after the entities that emitted them

    def process_events(self) -> None:
        """launch's event loop: events are handled after the current actions ran, in emission order."""
        while self.events:
            event, ctx = self.events.pop(0)
            self.handle(event, ctx)

    def run_file(self, path: Path, configs: dict[str, str], top: bool) -> None:
        ld = load_launch_description(path)
        self.files.append(path)
        self.run_entities(ld.entities, Context(configs, path), top)

    def run_entities(self, entities, ctx: Context, top: bool) -> None:
        for e in entities:
            self.run(e, ctx, top)

    def run(self, e, ctx: Context, top: bool) -> None:
        if isinstance(e, LaunchDescription):
            return self.run_entities(e.entities, ctx, top)
        if not isinstance(e, Action):
            raise LaunchError(f"not a launch action: {e!r}")
        if e.condition is not None and not e.condition.evaluate(ctx):
            return
        if isinstance(e, DeclareLaunchArgument):
            if top:
                self.arguments[e.name] = e
            if e.name not in ctx.launch_configurations:
                if e.default_value is None:
                    raise LaunchError(f"required launch argument '{e.name}' was not given")
                ctx.launch_configurations[e.name] = perform(ctx, e.default_value)
            if e.choices is not None and ctx.launch_configurations[e.name] not in e.choices:
                raise LaunchError(f"argument '{e.name}'={ctx.launch_configurations[e.name]!r} not in {e.choices}")
        elif isinstance(e, SetLaunchConfiguration):
            ctx.launch_configurations[perform(ctx, e.name)] = perform(ctx, e.value)
        elif isinstance(e, GroupAction):
            inner = Context(dict(ctx.launch_configurations) if e.scoped else ctx.launch_configurations,
                            ctx.current_file)
            for k, v in e.launch_configurations.items():
                inner.launch_configurations[perform(ctx, k)] = perform(ctx, v)
            self.run_entities(e.actions, inner, False)
        elif isinstance(e, OpaqueFunction):
            out = e.function(ctx, *e.args, **e.kwargs)
            self.run_entities(out or [], ctx, False)
        elif isinstance(e, TimerAction):
            self.run_entities(e.actions, ctx, False)
        elif isinstance(e, IncludeLaunchDescription):
            path = Path(perform(ctx, e.source.location))
            if not path.is_file():
                raise LaunchError(f"included launch file {path} does not exist")
            configs = dict(ctx.launch_configurations)
            for k, v in e.launch_arguments:
                configs[perform(ctx, k)] = perform(ctx, v)
            self.run_file(path, configs, False)
        elif isinstance(e, Node):
            self.start_node(e, ctx)
        elif isinstance(e, ExecuteProcess):
            self.processes.append([perform(ctx, c) for c in e.cmd])
        elif isinstance(e, RegisterEventHandler):
            self.handlers.append((e.event_handler, ctx))
            if isinstance(e.event_handler, OnProcessStart):
                for n in self.nodes:  # a process already started: the handler fires once it is registered
                    if e.event_handler.target is None or e.event_handler.target is n.action:
                        self.run_entities(e.event_handler.entities, ctx, False)
        elif isinstance(e, EmitEvent):
            self.events.append((e.event, ctx))
        elif isinstance(e, (LogInfo, Shutdown)):
            pass
        else:
            raise LaunchError(f"stand-in does not know {type(e).__name__}")

    def start_node(self, e: Node, ctx: Context) -> None:
        params: list[Any] = []
        for p in e.parameters:
            if isinstance(p, dict):
                params.append(flatten(_eval_param_value(ctx, p)))
            elif isinstance(p, ParameterFile):
                params.append(Path(perform(ctx, p.param_file)))
            else:
                params.append(Path(perform(ctx, p)))
        ns = perform(ctx, e.namespace) if e.namespace is not None else ""
        n = StartedNode(package=perform(ctx, e.package) if e.package is not None else "",
                        executable=perform(ctx, e.executable),
                        name=perform(ctx, e.name) if e.name is not None else None,
                        namespace="/" + ns.strip("/") if ns.strip("/") else "/",
                        parameters=params, lifecycle=isinstance(e, LifecycleNode),
                        remappings=[(perform(ctx, a), perform(ctx, b)) for a, b in e.remappings], action=e)
        self.nodes.append(n)
        for handler, hctx in list(self.handlers):
            if isinstance(handler, OnProcessStart) and handler.target in (None, e):
                self.run_entities(handler.entities, hctx, False)

    def handle(self, event, ctx: Context) -> None:
        if not isinstance(event, ChangeState):
            raise LaunchError(f"stand-in does not know event {type(event).__name__}")
        goal = _GOAL.get(event.transition_id)
        if goal is None:
            raise LaunchError(f"unknown lifecycle transition id {event.transition_id}")
        for n in self.nodes:
            if not event.lifecycle_node_matcher(n.action):
                continue
            if not n.lifecycle:
                raise LaunchError(f"ChangeState targets {n.name}, which is not a LifecycleNode")
            start, n.state = n.state, goal
            for handler, hctx in list(self.handlers):
                if isinstance(handler, OnStateTransition) and handler.target in (None, n.action) and \
                        handler.goal_state in (None, goal) and handler.start_state in (None, start):
                    self.run_entities(handler.entities, hctx, False)


def _module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


def _standin_modules() -> dict[str, types.ModuleType]:
    g = globals()
    actions = ["DeclareLaunchArgument", "SetLaunchConfiguration", "GroupAction", "OpaqueFunction", "LogInfo",
               "TimerAction", "ExecuteProcess", "EmitEvent", "RegisterEventHandler", "IncludeLaunchDescription",
               "Shutdown"]
    subs = ["Substitution", "TextSubstitution", "LaunchConfiguration", "PathJoinSubstitution", "PythonExpression",
            "EnvironmentVariable", "ThisLaunchFileDir"]
    mods = {
        "launch.actions": _module("launch.actions", **{a: g[a] for a in actions}),
        "launch.substitutions": _module("launch.substitutions", **{s: g[s] for s in subs}),
        "launch.conditions": _module("launch.conditions", IfCondition=IfCondition, UnlessCondition=UnlessCondition,
                                     LaunchConfigurationEquals=LaunchConfigurationEquals),
        "launch.events": _module("launch.events", matches_action=matches_action),
        "launch.event_handlers": _module("launch.event_handlers", OnProcessStart=OnProcessStart),
        "launch.launch_description_sources": _module(
            "launch.launch_description_sources", PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
        "launch_ros.actions": _module("launch_ros.actions", Node=Node, LifecycleNode=LifecycleNode),
        "launch_ros.substitutions": _module("launch_ros.substitutions", FindPackageShare=FindPackageShare),
        "launch_ros.events": _module("launch_ros.events"),
        "launch_ros.events.lifecycle": _module("launch_ros.events.lifecycle", ChangeState=ChangeState),
        "launch_ros.event_handlers": _module("launch_ros.event_handlers", OnStateTransition=OnStateTransition),
        "launch_ros.parameter_descriptions": _module("launch_ros.parameter_descriptions",
                                                     ParameterFile=ParameterFile),
    }
    launch = _module("launch", LaunchDescription=LaunchDescription, LaunchContext=Context,
                     Substitution=Substitution, Action=Action, Condition=Condition)
    for sub in ("actions", "substitutions", "conditions", "events", "event_handlers",
                "launch_description_sources"):
        setattr(launch, sub, mods[f"launch.{sub}"])
    launch_ros = _module("launch_ros")
    for sub in ("actions", "substitutions", "events", "event_handlers", "parameter_descriptions"):
        setattr(launch_ros, sub, mods[f"launch_ros.{sub}"])
    mods["launch_ros.events"].lifecycle = mods["launch_ros.events.lifecycle"]
    mods["launch"], mods["launch_ros"] = launch, launch_ros
    return mods


@contextlib.contextmanager
def standins_installed():
    """The stand-ins importable as launch/launch_ros for the whole evaluation: launch files import them at load
    time, and this package's launch helpers (lerobot_control_ros.launch_lifecycle) when the launch runs them."""
    mods = _standin_modules()
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def load_launch_description(path: Path) -> LaunchDescription:
    """Execute the launch file with the stand-ins importable and return its LaunchDescription."""
    with standins_installed():
        spec = importlib.util.spec_from_file_location(f"launchfile_{path.stem.replace('.', '_')}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "generate_launch_description"):
            raise LaunchError(f"{path} has no generate_launch_description()")
        ld = module.generate_launch_description()
    if not isinstance(ld, LaunchDescription):
        raise LaunchError(f"{path}: generate_launch_description() returned {type(ld).__name__}")
    return ld


def evaluate_launch_file(path: str | Path, arguments: dict[str, str] | None = None) -> LaunchResult:
    """What `ros2 launch <path> k:=v ...` would start (nodes, processes) and the lifecycle state it leaves them in."""
    r = _Runner()
    with standins_installed():
        r.run_file(Path(path), dict(arguments or {}), True)
        r.process_events()
    return LaunchResult(arguments=r.arguments, nodes=r.nodes, processes=r.processes, files=r.files)
