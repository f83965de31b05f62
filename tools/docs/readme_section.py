"""A generated section of the README, between a begin and an end marker: spliced in (--write) or
compared (--check, a unified diff and exit 1 when stale). Shared by tools/docs/config_reference.py and
tools/bench/results.py."""
import difflib
import sys


def splice(text, begin, end, body, who):
    try:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
    except ValueError:
        raise SystemExit("%s: README has no %s ... %s markers" % (who, begin[:30], end))
    return head + begin + "\n" + body + end + tail


def update(path, begin, end, body, check, who):
    """Write @body between the markers of @path, or with @check only compare. Returns the exit code."""
    with open(path) as f:
        old = f.read()
    new = splice(old, begin, end, body, who)
    if not check:
        if new != old:
            with open(path, "w") as f:
                f.write(new)
        return 0
    if new != old:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                   path, path + " (generated)"))
        print("%s: %s is stale" % (who, path))
        return 1
    return 0
