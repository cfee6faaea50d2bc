"""Small shared pieces: errors, device, seeding, schedules, checkpoints."""
