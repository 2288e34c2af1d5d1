"""The real-xenstored test fixture itself: Debian's xenstored under the
hypervisor shim behaves as a xenstored does for dom0 clients, through the
xenstore-* tools and through libxenstore."""

import os
import signal

import pytest

import xenstored as xsd
from xenstored import PERM_NONE, PERM_READ, PERM_WRITE, PERM_BOTH


def test_tools_write_read_ls_rm(xenstored):
    xenstored.write("/local/domain/0/device-model/3/state", "running")
    xenstored.write("/local/domain/0/device-model/3/parameter", "0x28")
    assert xenstored.read("/local/domain/0/device-model/3/state") == "running"
    assert xenstored.ls("/local/domain/0/device-model/3") == ["parameter", "state"]
    assert xenstored.exists("/local/domain/0/device-model/3/state")

    xenstored.rm("/local/domain/0/device-model/3/state")
    assert xenstored.read("/local/domain/0/device-model/3/state") is None
    assert not xenstored.exists("/local/domain/0/device-model/3/state")
    assert xenstored.ls("/local/domain/0/device-model/3") == ["parameter"]
    # rm takes the subtree with it.
    xenstored.rm("/local/domain/0/device-model")
    assert xenstored.ls("/local/domain/0/device-model") is None
    assert xenstored.read("/local/domain/0/device-model/3/parameter") is None


def test_tools_and_libxenstore_agree(xenstored):
    c = xenstored.client()
    xenstored.write("/t/from-tool", "a b c")
    assert c.read("/t/from-tool") == "a b c"
    c.write("/t/from-lib", "x=1,y=2")
    assert xenstored.read("/t/from-lib") == "x=1,y=2"
    assert c.ls("/t") == ["from-lib", "from-tool"]
    # Binary values survive libxenstore (the tools would stop at the NUL).
    c.write("/t/bin", b"1\x002")
    assert c.read("/t/bin", raw=True) == b"1\x002"
    assert c.read("/t/nothing") is None
    c.mkdir("/t/dir")
    assert c.read("/t/dir") == ""
    c.rm("/t")
    assert c.ls("/t") is None


def test_watch_fires_on_write_and_rm(xenstored):
    c = xenstored.client()
    c.watch("/local/domain/0/device-model/4/command", "cmd")
    # A new watch fires once for its own path.
    assert c.event() == ("/local/domain/0/device-model/4/command", "cmd")
    assert c.events() == []

    xenstored.write("/local/domain/0/device-model/4/command", "pci-ins")
    assert c.events() == [("/local/domain/0/device-model/4/command", "cmd")]
    xenstored.write("/local/domain/0/device-model/4/command/below", "1")
    assert c.events() == [("/local/domain/0/device-model/4/command/below", "cmd")]
    xenstored.write("/local/domain/0/device-model/4/commandx", "1")
    assert c.events() == []
    xenstored.rm("/local/domain/0/device-model/4/command")
    assert c.events() == [("/local/domain/0/device-model/4/command", "cmd")]

    c.unwatch("/local/domain/0/device-model/4/command", "cmd")
    xenstored.write("/local/domain/0/device-model/4/command", "again")
    assert c.events() == []


def test_permissions_as_dom0(xenstored):
    c = xenstored.client()
    # What dom0 creates belongs to dom0, nobody else may read it.
    c.write("/local/domain/5/name", "guest")
    assert c.get_perms("/local/domain/5/name") == [(0, PERM_NONE)]

    # libxl gives a guest its home: owner dom5, dom0 read.
    xenstored.chmod("/local/domain/5", "n5", "r0")
    assert c.get_perms("/local/domain/5") == [(5, PERM_NONE), (0, PERM_READ)]
    # Nodes dom0 creates below inherit the parent's permissions...
    c.write("/local/domain/5/device/vbd/768/state", "1")
    assert c.get_perms("/local/domain/5/device/vbd/768/state") == \
        [(5, PERM_NONE), (0, PERM_READ)]
    # ...and dom0 is privileged: it reads and writes whatever the permissions.
    c.set_perms("/local/domain/5/name", [(5, PERM_NONE)])
    assert c.get_perms("/local/domain/5/name") == [(5, PERM_NONE)]
    assert c.read("/local/domain/5/name") == "guest"
    c.write("/local/domain/5/name", "renamed")
    assert xenstored.read("/local/domain/5/name") == "renamed"

    # Several entries, and the tools' view of them.
    c.set_perms("/local/domain/5/name", [(5, PERM_READ), (0, PERM_BOTH), (7, PERM_WRITE)])
    assert c.get_perms("/local/domain/5/name") == \
        [(5, PERM_READ), (0, PERM_BOTH), (7, PERM_WRITE)]
    listing = xenstored.tool("ls", "-p", "/local/domain/5")
    assert "(r5,b0,w7)" in listing


def test_several_clients(xenstored):
    clients = [xenstored.client() for _ in range(4)]
    for i, c in enumerate(clients):
        c.watch("/shared", "c%d" % i)
        assert c.event() == ("/shared", "c%d" % i)

    for i, c in enumerate(clients):
        c.write("/shared/k%d" % i, "v%d" % i)
    for i, c in enumerate(clients):
        evs = c.events()
        assert sorted(evs) == [("/shared/k%d" % j, "c%d" % i) for j in range(4)]
        assert c.ls("/shared") == ["k0", "k1", "k2", "k3"]
        assert [c.read("/shared/k%d" % j) for j in range(4)] == ["v0", "v1", "v2", "v3"]

    # A closed client's watches go with it; the others keep theirs.
    clients[0].close()
    xenstored.write("/shared/k9", "x")
    for i, c in enumerate(clients[1:], 1):
        assert c.events() == [("/shared/k9", "c%d" % i)]


def test_introduce_and_release_domain(xenstored):
    # Introducing a domain makes xenstored map its ring page and bind its
    # event channel: both come from the shim.
    c = xenstored.client()
    c.watch("@introduceDomain", "intro")
    c.watch("@releaseDomain", "release")
    assert sorted(c.events()) == [("@introduceDomain", "intro"),
                                  ("@releaseDomain", "release")]
    assert not c.is_introduced(9)
    c.introduce(9)
    assert c.events() == [("@introduceDomain", "intro")]
    assert c.is_introduced(9)
    assert c.domain_path(9) == "/local/domain/9"
    c.release(9)
    assert c.events() == [("@releaseDomain", "release")]
    assert not c.is_introduced(9)


def test_restart_empties_store_same_socket(xenstored):
    old = xenstored.client()
    old.write("/before", "1")
    socket_path = xenstored.socket
    pid = xenstored.proc.pid

    rc = xenstored.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    # The stale socket stays behind a crashed daemon and refuses.
    assert os.path.exists(socket_path)
    with pytest.raises(xsd.XenstoredError):
        xenstored.write("/x", "1")

    xenstored.start()
    assert xenstored.proc.pid != pid
    assert xenstored.socket == socket_path
    # The old connection is dead; a new one sees an empty store.
    with pytest.raises(xsd.ClientError):
        old.read("/before")
    assert xenstored.read("/before") is None
    xenstored.write("/after", "2")
    assert xenstored.client().read("/after") == "2"


def test_each_daemon_is_private(xenstored):
    other = xsd.Xenstored()
    try:
        other.start()
        assert other.dir != xenstored.dir
        xenstored.write("/only-here", "1")
        assert other.read("/only-here") is None
        assert xenstored.read("/only-here") == "1"
        directory = other.dir
    finally:
        other.cleanup()
    assert not other.alive()
    assert not os.path.exists(directory)
