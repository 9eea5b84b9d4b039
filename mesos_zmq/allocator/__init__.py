"""Fair sharing: the DRF sorter and the allocator that turns free resources into offers."""

from mesos_zmq.allocator.allocator import Allocation, Allocator
from mesos_zmq.allocator.sorter import DRFSorter

__all__ = ["Allocation", "Allocator", "DRFSorter"]
