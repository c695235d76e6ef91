"""The example flow `make up` deploys: the tutorial's greeting, every minute."""

from orchestrator import flow, get_run_logger, task


@task
def log_message(name: str) -> None:
    logger = get_run_logger()
    logger.info(f"Hello {name}!")


@flow
def leonardo_dicapriflow(name: str = "Leo") -> None:
    log_message(name)


if __name__ == "__main__":
    leonardo_dicapriflow("Leo")
