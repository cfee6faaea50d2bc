import contextlib
import difflib
import errno
import os
import threading


class ConfigError(ValueError):
    """A bad configuration value. The message is one line naming the key and the fix."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


def nearest(word: str, choices, cutoff: float = 0.6) -> str | None:
    """The choice `word` was meant to be: the same but for case, else the closest spelling (difflib,
    ignoring case); None when none is close enough."""
    by_lower = {str(choice).lower(): str(choice) for choice in choices}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


# What the OS says when a file cannot be written for a reason the user fixes (not a bug): a full
# disk, a quota, a file-size limit, a read-only file system, no permission, a failing device.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def write_failure(error: BaseException) -> str | None:
    """The OS's reason (e.g. "No space left on device") when `error` is a failed write, else None.
    Found on the OSError itself, on one it was raised while handling (torch.save reports its zip
    writer's failure as a RuntimeError), or quoted in an encoder's message (ffmpeg, via moviepy)."""
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in WRITE_ERRNOS:
            return cause.strerror or os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    text = str(error)
    return next((os.strerror(code) for code in WRITE_ERRNOS if os.strerror(code) in text), None)


@contextlib.contextmanager
def refused_writes(error_for):
    """Raise `error_for(reason)` (one line, e.g. a ConfigError) in place of a write the OS refuses
    (`write_failure`); any other error goes through as it is."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        reason = write_failure(error)
        if reason is None:
            raise
        raise error_for(reason) from None


class WriteFailed(ConfigError):
    """A file the command could not write (`write_failure`); nothing half-written is left of it."""

    def __init__(self, key: str, path, reason: str, fix: str):
        self.path, self.reason = path, reason
        super().__init__(key, f"cannot write {path}: {reason}; {fix}")


def quiet_event_writer_failures() -> None:
    """TensorBoard's writer thread ends on a write the OS refuses (a full disk) and Python prints its
    traceback; the training thread gets the same error at its next write (TensorBoard raises it
    again there) and the run stops with one line saying so (deeprl.run). That thread's traceback is
    left out; any other thread's error, and any other error, is printed as before."""
    previous = threading.excepthook
    if getattr(previous, "deeprl", False):
        return

    def hook(args) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and write_failure(args.exc_value) is not None:
            return
        previous(args)

    hook.deeprl = True
    threading.excepthook = hook
