"""Development helpers: the throwaway demo and development members."""
