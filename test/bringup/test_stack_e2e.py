"""End-to-end: the whole stack in real processes (controller + simulated arm, simulated cameras, bridge with a real
tiny ACT policy, policy node, bag recorder), then the fault drills, each with an assertion on what the arm does.

Layout (to stay within a few minutes on 2 cores):
  test_demo_*       the README's entry point itself (`lerobot-ros-demo --duration 30`) in a subprocess, with the
                    official openpi-client talking to its bridge meanwhile; its plot, summary and bag are checked
  test_drill_*      one shared stack (module fixture) started with the demo's own bring-up, drills in the order
                    written: non-destructive first, e-stop (which ends the controller) last
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lerobot_control_ros.demo import activate, bring_up
from lerobot_control_ros.demo_stack import Stack, StackConfig, load_params, setup_yaml
from lerobot_serve_ros.ros_env import free_port
from lerobot_serve_ros.ros_env import cleanup_shm, localhost_ros_env, shm_snapshot

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEMO = Path(sys.executable).parent / "lerobot-ros-demo"
_SETUP = load_params(setup_yaml("sim_arm"))
WATCHDOG_S = float(_SETUP["controller_node"]["watchdog_timeout_s"])
STATUS_SLACK_S = 0.5  # status is published at 20 Hz; transitions are seen at most this late on a busy machine
HOLD_TOL_RAD = 0.02
MAX_IMAGE_AGE_S = float(_SETUP["policy_node"]["max_image_age_s"])  # a holding arm may settle by its last commanded step, never more


def openpi_observation(rng: np.random.Generator) -> dict:
    """What a plain openpi client sends: the policy's own feature names, HWC uint8 images, float32 state."""
    return {"observation.images.front": rng.integers(0, 255, (96, 96, 3), dtype=np.uint8),
            "observation.images.wrist": rng.integers(0, 255, (96, 96, 3), dtype=np.uint8),
            "observation.state": rng.normal(0, 0.3, 6).astype(np.float32)}


def openpi_actions(port: int, n: int = 3) -> list[np.ndarray]:
    """The official openpi-client (PyPI openpi-client) against the bridge: metadata, then n inferences."""
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    client = WebsocketClientPolicy(host="127.0.0.1", port=port)
    meta = client.get_server_metadata()
    assert meta["policy_type"] == "act" and meta["action_dim"] == 6, meta
    rng = np.random.default_rng(0)
    out = [np.asarray(client.infer(openpi_observation(rng))["actions"]) for _ in range(n)]
    client._ws.close()
    return out


def wait_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def max_motion(monitor, seconds: float) -> float:
    """Largest joint excursion (rad) from the position at the start of the window, over `seconds`."""
    start = monitor.joints()
    assert start is not None, "no joint_states"
    worst = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        worst = max(worst, float(np.max(np.abs(monitor.joints() - start))))
        time.sleep(0.02)
    return worst


# --------------------------------------------------------------------------------------------------- the demo
@pytest.mark.timeout(240)
def test_demo_runs_30s_and_openpi_client_gets_actions(tmp_path, tiny_act_checkpoint):
    """`lerobot-ros-demo --duration 30`: chunks produced, arm follows, the controller keeps time; bag read back."""
    port = free_port()
    out = tmp_path / "demo"
    before = shm_snapshot()
    proc = subprocess.Popen([str(DEMO), "--duration", "30", "--out", str(out), "--port", str(port),
                             "--policy-path", str(tiny_act_checkpoint)],
                            env=dict(os.environ), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        wait_port(port, timeout=90)
        chunks = openpi_actions(port, n=3)  # while the demo runs, a plain websocket client gets actions too
        for a in chunks:
            assert a.dtype == np.float32 and a.shape == (50, 6) and np.isfinite(a).all()
        stdout, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        cleanup_shm(before)
    print(stdout[-4000:])
    assert proc.returncode == 0, stdout[-4000:]
    assert "RUNNING" in stdout and "| chunks" in stdout, "no live status line"

    summary = json.loads((out / "summary.json").read_text())
    print(json.dumps(summary, indent=1))
    assert summary["chunks_received"] >= 30, summary  # 4 Hz for 30 s, minus start-up
    assert "RUNNING" in summary["controller_states"]
    assert summary["loop_rate_hz"] > 450, summary
    # Zero misses > 1 ms is the target on a quiet machine (the controller's benchmark measures it); a shared 2-core
    # box running this whole stack plus other work cannot promise it, so assert at most 1 % of periods late by
    # more than 1 ms, and print the numbers (README quotes them)
    ticks = summary["duration_s"] * 500
    print(f"deadline misses > 1 ms: {summary['deadline_misses']} of ~{ticks:.0f} periods; period p99 "
          f"{summary['period_p99_ms']} ms, max {summary['period_max_ms']} ms")
    assert summary["deadline_misses"] <= 0.01 * ticks, summary
    assert (out / "plot.png").stat().st_size > 10_000

    # the bag: every recorded topic readable, with the policy's inputs and outputs and the bridge's exchanges
    from rosbags.rosbag2 import Reader

    from lerobot_serve_ros.recorder import make_typestore

    ts = make_typestore()
    counts, chunk_rows, joints, chunk_msgs = {}, [], [], []
    with Reader(out / "bag") as reader:
        for conn, t, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == "/action_chunk":
                chunk_msgs.append((t, msg))
                chunk_rows.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg.dt,
                                   np.asarray(msg.data).reshape(msg.rows, msg.cols)))
            elif conn.topic == "/joint_states":
                joints.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, np.array(msg.position)))
    for topic in ("/front/image_raw", "/wrist/image_raw", "/joint_states", "/action_chunk", "/controller/status",
                  "/bridge/observation_summary", "/bridge/action_chunk", "/diagnostics"):
        assert counts.get(topic, 0) > 0, f"{topic} not in the bag: {counts}"
    t, c = chunk_msgs[-1]
    assert (c.rows, c.cols) == (50, 6) and len(c.data) == 300
    assert list(c.action_names) == summary["joint_names"], "chunk columns and joint_states in different orders"

    # the arm follows the chunks: it started at the simulated arm's initial pose, and during the run it stays close
    # to the action each chunk schedules for the moment (row (t - stamp) / dt of the newest chunk), much closer
    # than it would be had it stayed where it started
    q_first = np.array(summary["joints_first"])
    track, idle = [], []
    for t, q in joints:
        due = [(st, dt, a) for st, dt, a in chunk_rows if st <= t]
        if due:
            st, dt, a = due[-1]
            i = int((t - st) / dt)
            if 0 <= i < len(a):
                track.append(np.abs(q - a[i]).max())
                idle.append(np.abs(q_first - a[i]).max())
    track_err, idle_err = float(np.median(track)), float(np.median(idle))
    print(f"tracking error median {track_err:.3f} rad over {len(track)} joint states; "
          f"had the arm not moved: {idle_err:.3f} rad")
    assert len(track) > 500
    assert track_err < 0.1 and track_err < 0.5 * idle_err, "the arm does not follow the chunks"


# ----------------------------------------------------------------------------------------------- shared stack
@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_act_checkpoint):
    from lerobot_control_ros.stack_monitor import StackMonitor

    before = shm_snapshot()
    env = localhost_ros_env()
    out = tmp_path_factory.mktemp("stack")
    cfg = StackConfig(setup=setup_yaml("sim_arm"), out_dir=out, checkpoint=tiny_act_checkpoint, port=free_port(),
                      record=False)
    s = Stack(cfg, env)
    monitor = StackMonitor(domain_id=int(env["ROS_DOMAIN_ID"])).start()
    try:
        bring_up(s, monitor, progress=lambda m: print("[stack]", m))
        monitor.wait_for(lambda: monitor.chunk_count >= 3, 20, "first chunks")
        yield s, monitor
    except BaseException:
        print(s.log_tails(60))
        raise
    finally:
        s.stop_all()
        monitor.close()
        cleanup_shm(before)


def running_with_chunks(stack_monitor, timeout: float = 30.0) -> float:
    """Bring the controller to RUNNING with a chunk just accepted (so the watchdog has its full timeout ahead);
    returns the monitor time. Resumes after a previous drill's pause, as an operator would."""
    s, m = stack_monitor
    deadline = time.monotonic() + timeout
    while True:
        if m.state() == "PAUSED":
            ok, msg = m.trigger("controller/resume")
            assert ok, f"resume refused: {msg}"
        n = m.chunk_count
        try:
            m.wait_for(lambda: m.chunk_count > n and m.state() == "RUNNING" and m.status.queue_depth > 0
                       and not m.status.holding, 5, "RUNNING with a fresh chunk")
            return m.now()
        except TimeoutError:
            if time.monotonic() > deadline:
                raise AssertionError(f"controller not RUNNING with chunks after {timeout:.0f} s (state "
                                     f"{m.state()}, last inference {m.last_chunk.inference_ms:.0f} ms: is the "
                                     f"machine overloaded?)\n{s.log_tails(20)}")


def paused_after(m, t_fault: float, timeout: float) -> float:
    """Monitor time of the first RUNNING -> PAUSED seen after `t_fault`."""
    m.wait_for(lambda: any(name == "PAUSED" and t >= t_fault for t, name in m.states_seen), timeout,
               f"PAUSED after the fault (now {m.state()})")
    return next(t for t, name in m.states_seen if name == "PAUSED" and t >= t_fault)


RQT_PLOT_TOPICS = ("/controller/status", "/action_chunk", "/bridge/action_chunk", "/joint_states",
                   "/predicted_joint_states")  # the README's rqt_plot lines


@pytest.mark.timeout(60)
def test_rviz_config_and_rqt_topics_are_live(stack):
    """Every topic the rviz config displays, and every topic of the README's rqt_plot lines, is published by the
    running stack; the chunk mirror carries one gripper pose per action."""
    import yaml
    from geometry_msgs.msg import PoseArray

    s, m = stack
    rviz = yaml.safe_load((REPO / "rviz" / "lerobot_ros.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    topics = [d["Topic"]["Value"] for d in displays if "Topic" in d]
    assert {"/viz/arm", "/viz/chunk_tip_path", "/front/image_raw"} <= set(topics)
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "base_link"
    for topic in (*topics, *RQT_PLOT_TOPICS):
        m.wait_for(lambda: m.node.get_publishers_info_by_topic(topic), 10, f"a publisher on {topic}")
    got = []
    sub = m.node.create_subscription(PoseArray, "/viz/chunk_tip_path", got.append, 10)
    try:
        m.wait_for(lambda: got, 10, "a chunk mirrored on /viz/chunk_tip_path")
    finally:
        m.node.destroy_subscription(sub)
    assert len(got[0].poses) == 50 and got[0].header.frame_id == "base_link"


@pytest.mark.timeout(60)
def test_drill_websocket_client_drops_mid_request(stack):
    """A websocket client that vanishes with a request in flight: the server keeps serving the ROS policy node and
    other websocket clients."""
    s, m = stack
    running_with_chunks(stack)
    import websockets.sync.client as wsc

    from lerobot_serve_ros.codec import packb  # the server's own codec: openpi's msgpack-numpy encoding

    rng = np.random.default_rng(1)
    for _ in range(3):
        conn = wsc.connect(s.url, max_size=None)
        conn.recv(timeout=10)  # metadata
        conn.send(packb(openpi_observation(rng)))
        conn.socket.close()  # gone mid-request, no close handshake
    n, taken = m.chunk_count, m.status.last_chunk_id
    actions = openpi_actions(s.cfg.port, n=2)
    assert all(a.shape == (50, 6) for a in actions)
    m.wait_for(lambda: m.chunk_count >= n + 3, 20, "policy node chunks after the dropped clients")
    assert m.status.last_chunk_id > taken, "the controller stopped taking the policy node's chunks"
    assert s.alive("bridge")
    errors = m.diag_value("bridge_node", "errors", "0")
    print(f"bridge after 3 dropped clients: errors={errors}, clients={m.diag_value('bridge_node', 'clients')}")


@pytest.mark.timeout(60)
def test_drill_camera_stops(stack):
    """Cameras freeze (the driver process stops publishing, its publishers stay): no chunks on stale input, the
    policy node's diagnostics say which input is stale, the controller pauses on the watchdog and holds."""
    s, m = stack
    running_with_chunks(stack)
    os.kill(s.procs["camera"].pid, signal.SIGSTOP)
    try:
        t_stop, wall_stop = m.now(), time.time()
        m.wait_for(lambda: any("stale" in d.message.lower() for _t, d in m.diag("policy_node: inputs")
                               if _t > t_stop + 0.6), 5, "policy_node diagnostics reporting stale camera input")
        t_stale = m.now()
        paused_after(m, t_stop, WATCHDOG_S + 1.0 + STATUS_SLACK_S)
        assert m.status.holding
        motion = max_motion(m, 1.5)
        # an inference that started on fresh frames may still land; none may start on frames older than the limit
        # (a chunk's stamp is its observation's time: joint states keep it rising if it were computed now)
        late = [c for c in m.series.chunks if c[0] > t_stop and c[4] > wall_stop + MAX_IMAGE_AGE_S + 0.25]
        assert not late, f"chunk(s) computed from stale camera input: {late}"
        diag = " ".join(d.message for _t, d in m.diag("policy_node: inputs"))
        print(f"stale reported after {t_stale - t_stop:.2f} s; diagnostics: {diag}; held within {motion:.4f} rad")
        assert "front" in diag and "wrist" in diag and "STALE" in diag
        assert motion < HOLD_TOL_RAD
    finally:
        os.kill(s.procs["camera"].pid, signal.SIGCONT)
    running_with_chunks(stack)


@pytest.mark.timeout(90)
def test_drill_policy_process_killed_then_restarted(stack):
    """kill -9 of the policy node: PAUSED and holding within the watchdog timeout; restart + resume: RUNNING."""
    s, m = stack
    running_with_chunks(stack)
    t_kill = m.now()
    s.kill9("policy")
    t_paused = paused_after(m, t_kill, WATCHDOG_S + 1.0 + STATUS_SLACK_S)
    print(f"PAUSED {t_paused - t_kill:.2f} s after kill -9 (watchdog {WATCHDOG_S} s)")
    assert t_paused - t_kill <= WATCHDOG_S + 0.5 + STATUS_SLACK_S
    assert m.status.holding
    assert max_motion(m, 1.5) < HOLD_TOL_RAD

    s.start("policy")
    activate(s, m, "policy", progress=print)
    n = m.chunk_count
    m.wait_for(lambda: m.chunk_count >= n + 2, 15, "chunks from the restarted policy node")
    assert m.state() == "PAUSED", "the controller must not resume by itself"
    ok, msg = m.trigger("controller/resume")
    assert ok, msg
    m.wait_state("RUNNING", timeout=5)
    m.wait_for(lambda: m.status.queue_depth > 0 and not m.status.holding, 5, "executing queued actions again")


@pytest.mark.timeout(90)
def test_drill_server_restarted_client_reconnects(stack):
    """The bridge (websocket server) goes away and comes back on the same port: the policy node's client
    reconnects by itself and chunks resume; meanwhile the controller pauses and holds."""
    s, m = stack
    running_with_chunks(stack)
    t_kill = m.now()
    s.kill9("bridge")
    paused_after(m, t_kill, WATCHDOG_S + 1.0 + STATUS_SLACK_S)
    assert max_motion(m, 1.0) < HOLD_TOL_RAD
    from diagnostic_msgs.msg import DiagnosticStatus

    m.wait_for(lambda: any(d.level == DiagnosticStatus.ERROR for _t, d in m.diag("policy_node: inference")), 10,
               "policy_node reporting the lost server")
    print("policy_node while the server is down:", [d.message for _t, d in m.diag("policy_node: inference")])
    s.start("bridge")
    activate(s, m, "bridge", progress=print)
    n = m.chunk_count
    m.wait_for(lambda: m.chunk_count >= n + 2, 20, "chunks after the server came back (client reconnected)")
    assert m.lifecycle_state("policy_node") == "active", "the policy node needed no help to reconnect"
    ok, msg = m.trigger("controller/resume")
    assert ok, msg
    m.wait_state("RUNNING", timeout=5)


@pytest.mark.timeout(60)
def test_drill_estop_then_damping_no_further_commands(stack):
    """E-stop: EMERGENCY_STOP at once, then DAMPING and exit; the arm stops where it is; chunks the policy node
    keeps publishing are no longer taken and start is refused. (Ends the controller: this drill runs last.)"""
    s, m = stack
    running_with_chunks(stack)
    t0 = m.now()
    ok, msg = m.trigger("controller/estop")
    assert ok, msg
    status = m.wait_for(lambda: next((msg for t, msg in m.state_changes
                                      if msg.state_name == "EMERGENCY_STOP" and t >= t0), None), 3, "EMERGENCY_STOP")
    assert status.state_name == "EMERGENCY_STOP" and status.holding and status.queue_depth == 0, status
    chunk_id = status.last_chunk_id
    q_estop = m.joints()
    ok, msg = m.trigger("controller/start", timeout=5)
    assert not ok, f"start accepted during an e-stop: {msg}"
    m.wait_for(lambda: any(name == "DAMPING" and t >= t0 for t, name in m.states_seen), 5, "DAMPING")
    n = m.chunk_count
    m.wait_for(lambda: m.chunk_count > n, 5, "the policy node still publishing chunks")
    assert m.status.last_chunk_id == chunk_id, "a chunk was taken after the e-stop"
    assert float(np.max(np.abs(m.joints() - q_estop))) < HOLD_TOL_RAD, "the arm moved after the e-stop"
    # the controller exits after damping (stop and e-stop end the process; a new run needs a new start)
    m.wait_for(lambda: not s.alive("controller"), 10, "controller_node exiting after DAMPING")
    assert s.procs["controller"].proc.returncode == 0
    print(f"states after e-stop: {[(round(t - t0, 2), n) for t, n in m.states_seen if t >= t0]}")
