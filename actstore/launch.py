"""Which share of the work this process does, read from the launcher that started it (torchrun or SLURM).

actstore does not launch processes: ``torchrun --nproc-per-node 4 --no-python actstore extract ...`` or
``srun actstore extract ...`` start one process per GPU, each reads its rank here, and the ranks meet through the
store (done markers), so no collective backend is needed. Work is dealt out in whole units (an extraction block,
a train segment, a tuning seed) round robin, so every unit has one owner and every rank's bytes are the ones a
single process would write.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import ActstoreError

#: how long a rank waits for the others (rank 0 creating a group, the last rank publishing prompts)
RENDEZVOUS_SECONDS = 3600
#: (rank, world size, local rank) variables of each launcher, in the order they are looked for
LAUNCHERS = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("SLURM", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


@dataclass(frozen=True)
class Shard:
    """This process's place in a launch: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world or self.local_rank < 0:
            raise ActstoreError(
                f"rank {self.rank} of world size {self.world} (local rank {self.local_rank}) is not a "
                "valid place in a launch"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Shard:
        """The launcher's rank variables; none set: one process doing everything."""
        for launcher, rank, world, local in LAUNCHERS:
            if rank in env or world in env:
                if rank not in env or world not in env:
                    raise ActstoreError(
                        f"{launcher} launch: {rank} and {world} must both be set "
                        f"(found only {rank if rank in env else world})"
                    )
                try:
                    return cls(int(env[rank]), int(env[world]), int(env.get(local, 0)))
                except ValueError:
                    raise ActstoreError(
                        f"{launcher} launch: {rank}={env[rank]!r}, {world}={env[world]!r} and "
                        f"{local}={env.get(local, '0')!r} must be integers"
                    ) from None
        return cls()

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def owns(self, unit: int) -> bool:
        """Whether unit ``unit`` (of a numbering every rank shares) is this rank's."""
        return unit % self.world == self.rank

    def device(self, requested: str | None) -> str | None:
        """The device asked for; by default one GPU per process, ``cuda:LOCAL_RANK``, under a launcher on a machine
        with GPUs (None: the model loader's own default)."""
        if requested is not None or not self.sharded:
            return requested
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else None


def wait_until(ready: Callable[[], bool], what: str, shard: Shard, seconds: float = RENDEZVOUS_SECONDS) -> None:
    """Block until ``ready()``: how ranks meet through the store, with no collective backend."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise ActstoreError(
                f"rank {shard.rank} of {shard.world} waited {seconds:.0f} s for {what}; are the other "
                "ranks running? Run the same launch again to continue"
            )
        time.sleep(0.2)
