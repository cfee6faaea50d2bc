def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """Linear interpolation from `start` (t=0) to `end` (t>=duration), constant afterwards."""
    if duration <= 0:
        return end
    fraction = min(max(t / duration, 0.0), 1.0)
    return start + fraction * (end - start)
