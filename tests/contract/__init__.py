"""The contract every backend is held to, one suite generated over backend x mode x cell."""
