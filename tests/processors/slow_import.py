"""A processor module that takes its time to import."""

import time

time.sleep(30)


def run(job: object) -> None:
    pass
