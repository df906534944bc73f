"""Service: the wiring. One module builds deployment -> model -> privacy guard -> media
keeper -> event sink -> pipeline for both ``trapcount process`` (a finite source) and
``trapcount run`` (the long-running service with its scheduled jobs); doctor, systemd
notification and logging live here too. Sits on every room below it, never on office."""
