"""Ground-truth facial animation: phones -> 52 ARKit weight curves -> vertices."""
