"""The registration authority: requests in, decisions and certificates out."""

from ca_service.enrollment.service import DeviceView, Enrollment

__all__ = ["DeviceView", "Enrollment"]
