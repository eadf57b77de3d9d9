"""Drives `nexuslite` (no command: the shell, since stdin is a terminal) through a pseudo-terminal: prompt, line editing input, a multi-line
statement with the continuation prompt, Ctrl-C at the prompt, exit, and the history file.
Usage: pty_shell.py NEXUSLITE DB HOME. Prints one line per check; exit 1 when one failed."""
import os
import pty
import select
import signal
import sys

nx, db, home = sys.argv[1:4]
env = dict(os.environ, TERM="dumb", LC_ALL="C.UTF-8", NO_COLOR="1", HOME=home)
env.pop("NEXUSLITE_HISTORY", None)
pid, fd = pty.fork()
if pid == 0:
    os.execve(nx, [nx, "--db", db], env)  # no command on a terminal: the shell

buf = b""
failed = 0


def read_until(token, what):
    """Reads until token appears (30 s guard against a hang, not a timing check)."""
    global buf, failed
    while token not in buf:
        r, _, _ = select.select([fd], [], [], 30)
        if not r:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        buf += data
    ok = token in buf
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failed += 1
        sys.stdout.write("  output so far: %r\n" % buf[-400:])
    else:
        buf = buf[buf.index(token) + len(token):]
    return ok


read_until(b"nexuslite> ", "first prompt")
os.write(fd, b'db.t.insertOne({_id: 1, v: "x"})\r')
read_until(b"insertedId: 1", "insertOne result")
read_until(b"nexuslite> ", "prompt after a statement")
os.write(fd, b"db.t.find(\r")
read_until(b"... ", "continuation prompt for an open bracket")
os.write(fd, b"{_id: 1})\r")
read_until(b"v: 'x'", "multi-line statement ran")
read_until(b"nexuslite> ", "prompt after multi-line")
os.write(fd, b"db.t.find({\r")
read_until(b"... ", "continuation prompt again")
os.write(fd, b"\x03")
read_until(b"nexuslite> ", "Ctrl-C drops the pending input, the shell goes on")
# The same Ctrl-C arriving as SIGINT (what the terminal sends when the key lands before the line
# editor has switched the terminal to edit mode): the pending input is dropped all the same.
os.write(fd, b"db.t.find({\r")
read_until(b"... ", "continuation prompt a third time")
os.kill(pid, signal.SIGINT)
read_until(b"nexuslite> ", "SIGINT at the prompt drops the pending input, the shell goes on")
os.write(fd, b"db.t.countD\t)\r")
read_until(b"1\r\n", "shell still answers after Ctrl-C; Tab completes countDocuments(")
read_until(b"nexuslite> ", "prompt")


def on_alarm(signum, frame):
    raise TimeoutError()


def exit_session(what):
    """Types exit, reads the rest of the output (EOF/EIO on the master once the child exits; 30 s
    guard), then reaps the child; a shell that does not exit is killed and reported, never waited
    for forever. Counts a failure unless it exited with status 0."""
    global buf, failed
    os.write(fd, b"exit\r")
    while True:
        r, _, _ = select.select([fd], [], [], 30)
        if not r:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        buf += data
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    try:
        _, status = os.waitpid(pid, 0)
    except TimeoutError:
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        print("FAIL %s did not exit after 'exit'" % what)
        failed += 1
    signal.alarm(0)
    code = os.waitstatus_to_exitcode(status)
    print(("ok   " if code == 0 else "FAIL ") + "%s exit status %d" % (what, code))
    if code:
        sys.stdout.write("  output: %r\n" % buf[-600:])
    failed += code != 0


exit_session("shell")

# 2. A second session: SIGINT raised while the continuation prompt is drawn, before the line
# editor reads (the test hook makes the race deterministic). The Ctrl-C must not be lost: the
# pending input is dropped and a fresh prompt appears without another key.
pid, fd = pty.fork()
if pid == 0:
    os.execve(nx, [nx, "--db", db], dict(env, NEXUSLITE_TEST_SIGINT_AT_CONTINUATION="1"))
buf = b""
read_until(b"nexuslite> ", "second session: first prompt")
os.write(fd, b"db.t.find({\r")
read_until(b"... ", "second session: continuation prompt")
read_until(b"nexuslite> ", "second session: SIGINT while the prompt is drawn drops the pending input")
exit_session("second session")

hist = os.path.join(home, ".nexuslite_history")
text = open(hist, encoding="utf-8", errors="replace").read() if os.path.exists(hist) else ""
ok = "countDocuments" in text
print(("ok   " if ok else "FAIL ") + "history file keeps the statements")
failed += not ok
sys.exit(1 if failed else 0)
