"""Kubernetes resource quantities (4, 500m, 16Gi, 1e3) as the integers placement compares: CPU in millicores,
memory in bytes. Rounded up, as the API server rounds a request."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)\s*$")


def quantity(value: object) -> Decimal:
    """The value of a quantity; 0 for None or anything that is not one (the API server refuses those anyway)."""
    if value is None:
        return Decimal(0)
    match = _QUANTITY.match(str(value))
    if match is None or match.group(2) not in _SUFFIX:
        return Decimal(0)
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation:
        return Decimal(0)


def cpu_millis(value: object) -> int:
    """CPU in millicores ("500m" -> 500, 4 -> 4000)."""
    return max(0, math.ceil(quantity(value) * 1000))


def memory_bytes(value: object) -> int:
    """Memory in bytes ("16Gi" -> 17179869184)."""
    return max(0, math.ceil(quantity(value)))


def describe_memory(amount: int) -> str:
    """Bytes as a person reads a request: 64Gi, 512Mi."""
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount >= size:
            return f"{amount / size:.3g}{suffix}"
    return str(amount)


def describe_cpu(millis: int) -> str:
    return f"{millis / 1000:g}" if millis % 1000 == 0 else f"{millis}m"
