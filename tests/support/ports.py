"""Loopback ports for the processes a test or the demo starts (stdlib only).

A port found free is only free until someone binds it: between free_port() and the service's
own bind, another program (a parallel test, another service of the same stack) may take it.
Then the service exits ("address in use") while a /ready on that port answers 200 from the
other program. serves() tells the two apart: the process we started holds the listening socket.
"""
import os
import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _listening_inodes(port):
    """Inodes of the sockets listening on @port; None when /proc does not say."""
    inodes, read = set(), False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        read = True
        for row in rows:
            f = row.split()  # sl local_address rem_address st ... uid timeout inode
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    return inodes if read else None


def serves(pid, port):
    """True when process @pid holds a socket listening on TCP @port (Linux /proc; True where
    /proc/net is not there to ask)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    if not inodes:
        return False
    fds = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for fd in names:
        try:
            link = os.readlink(os.path.join(fds, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False
