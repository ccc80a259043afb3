"""Data-parallel runs (`--workers N`): the launcher that starts and checks them, the
worker process each framework's engine joins, and the supervisor that ends a failed
group in bounded time."""
