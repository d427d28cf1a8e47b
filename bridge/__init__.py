"""OneCMS Flow Bridge: Flowable case workflows with a PostgreSQL mirror operations can trust."""

__version__ = "0.1.0"
