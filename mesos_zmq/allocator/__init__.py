"""Fair sharing: the sorters (DRF, random) and the allocator that turns free resources
into offers."""

from mesos_zmq.allocator.allocator import Allocation, Allocator
from mesos_zmq.allocator.sorter import (
    SORTER_NAMES,
    DRFSorter,
    RandomSorter,
    Sorter,
    SorterFactory,
    sorter_factory,
)

__all__ = [
    "SORTER_NAMES",
    "Allocation",
    "Allocator",
    "DRFSorter",
    "RandomSorter",
    "Sorter",
    "SorterFactory",
    "sorter_factory",
]
