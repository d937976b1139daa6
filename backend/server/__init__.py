"""The backend server: a ZeroMQ ROUTER in front of one GPU worker and a priority queue."""

from .server import Server, ServerConfig

__all__ = ["Server", "ServerConfig"]
