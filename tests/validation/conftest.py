from tests.packages.cache import package_root

__all__ = ["package_root"]
