"""The engine: the steps an operator asks for (prepare, deploy, watch, promote,
roll back, register, retrain), built from core decisions and adapter calls."""
