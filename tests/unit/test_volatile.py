"""Which storage paths the start-up warning names as lost at reboot."""

from txregistry.volatile import parseMountinfo, storageVolatility, volatileReason

MOUNTINFO = """\
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
28 27 0:30 / /run rw,nosuid shared:2 - tmpfs tmpfs rw,size=100k
29 27 8:2 / /tmp/registry rw,relatime - xfs /dev/sdb1 rw
30 27 8:3 / /srv/with\\040space rw,relatime - ext4 /dev/sdc1 rw
"""


def test_parse():
    assert parseMountinfo(MOUNTINFO) == [
        ("/", "ext4"), ("/run", "tmpfs"), ("/tmp/registry", "xfs"), ("/srv/with space", "ext4")]
    assert parseMountinfo("garbage\n\n") == []


def test_underTmpOnTheRootFileSystem():
    mounts = parseMountinfo(MOUNTINFO)
    assert volatileReason("/tmp/data", mounts) == "it is under /tmp"
    assert volatileReason("/tmp", mounts) == "it is under /tmp"
    assert volatileReason("/tmpfoo/data", mounts) is None


def test_aVolumeMountedBelowTmpIsKept():
    # the container's VOLUME /tmp/registry
    mounts = parseMountinfo(MOUNTINFO)
    assert volatileReason("/tmp/registry", mounts) is None
    assert volatileReason("/tmp/registry/docker", mounts) is None
    assert volatileReason("/tmp/registryX", mounts) == "it is under /tmp"


def test_aTmpfsAnywhere():
    mounts = parseMountinfo(MOUNTINFO)
    assert volatileReason("/run/registry", mounts) == "it is on a tmpfs"
    assert volatileReason("/var/lib/registry", mounts) is None
    tmpTmpfs = mounts + [("/tmp", "tmpfs")]
    assert volatileReason("/tmp/data", tmpTmpfs) == "it is on a tmpfs"


def test_thisMachine(tmp_path):
    # /proc/self/mountinfo is read; an unreadable one means: only the /tmp rule
    assert storageVolatility(str(tmp_path), mountinfo=str(tmp_path / "none")) == (
        "it is under /tmp" if str(tmp_path).startswith("/tmp/") else None)
    assert storageVolatility("/dev/shm/x") == "it is on a tmpfs"
