"""Capture: where frames come from. Each source yields ``(UTC timestamp, BGR frame)``: video
files in media time, image folders in EXIF time, USB, RTSP and Pi cameras live. Knows
nothing of what is in the frames; imports no other room."""
